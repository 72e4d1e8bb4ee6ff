"""The real CLIs with tiny settings, for the tests marked ``cli``: fairseq-hydra-train of a recipe config without
(:func:`hydra_train`) or with (:func:`kd_train`) teacher sidecars, greedy decoding with fairseq-generate; and
fairseq's training loop in this process (:func:`train_in_process`), for the many configs that need to be shown to
train without paying a process start each."""
import logging
import os

from conftest import ROOT, USER_DIR, run

CONFIG_DIR = os.path.join(ROOT, "examples", "kd")
TINY_MODEL = ["model.encoder_layers=3", "model.encoder_embed_dim=32", "model.encoder_ffn_embed_dim=64",
              "model.depthwise_conv_kernel_size=5"]
TINY_KD_MODEL = ["model.encoder_embed_dim=32", "model.encoder_ffn_embed_dim=64", "model.depthwise_conv_kernel_size=5",
                 "model.aed_decoder_layers=1", "model.aed_decoder_embed_dim=32", "model.aed_decoder_ffn_embed_dim=64",
                 "model.aed_decoder_attention_heads=2"]
ON_CPU = ["common.fp16=false", "common.cpu=true", "common.log_format=simple", "dataset.valid_subset=valid",
          "distributed_training.distributed_world_size=1",
          "dataset.num_workers=0", "dataset.max_tokens=320000", "optimization.update_freq=[1]"]


def hydra_train(config, data, save_dir, max_update, *overrides):
    """``max_update`` updates of ``config`` (a 3-layer tiny model, the config's device and precision)."""
    return run(["fairseq-hydra-train", "--config-dir", CONFIG_DIR, "--config-name", config, f"task.data={data}",
                f"common.user_dir={USER_DIR}", f"checkpoint.save_dir={save_dir}",
                f"optimization.max_update={max_update}", "common.log_interval=1",
                "dataset.validate_interval_updates=0", "checkpoint.save_interval_updates=0", *TINY_MODEL, *overrides])


def kd_train(config, corpus, sidecars, save_dir, *overrides):
    """Two updates of ``config`` with the teacher sidecars in ``sidecars``, tiny, on CPU; the training log."""
    return run(["fairseq-hydra-train", "--config-dir", CONFIG_DIR, "--config-name", config, f"task.data={corpus}",
                f"task.kd_sidecar_dir={sidecars}", f"common.user_dir={USER_DIR}", f"checkpoint.save_dir={save_dir}",
                "optimization.max_update=2", "common.log_interval=1", *ON_CPU, *TINY_KD_MODEL, *overrides]).stdout


def train_in_process(config, corpus, sidecars, save_dir, *overrides):
    """fairseq-hydra-train's work without its process: ``config`` of examples/kd composed by hydra as
    fairseq-hydra-train composes it (the YAML validated against fairseq's schema, the registered dataclass
    defaults added), then fairseq's own training loop (``fairseq_cli.train.main``) with the settings of
    :func:`kd_train`. Returns the log lines it wrote, ``"logger | message"`` (``train_inner | epoch 001: ...``)."""
    from fairseq import distributed_utils
    from fairseq.dataclass.initialize import add_defaults, hydra_init
    from fairseq_cli.train import main
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    hydra_init(config)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.1"):
        cfg = compose(config_name=config, overrides=[
            f"task.data={corpus}", f"task.kd_sidecar_dir={sidecars}", f"common.user_dir={USER_DIR}",
            f"checkpoint.save_dir={save_dir}", "optimization.max_update=2", "common.log_interval=1", *ON_CPU,
            *TINY_KD_MODEL, *overrides])
    add_defaults(cfg)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    OmegaConf.set_struct(cfg, True)
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    root = logging.getLogger()
    level, root.level = root.level, logging.INFO
    root.addHandler(handler)
    try:
        distributed_utils.call_main(cfg, main)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return "\n".join(f"{record.name} | {record.getMessage()}" for record in records)


def generate(data, checkpoint, results, subset="test", *options):
    """Greedy CTC decoding of ``subset`` with fairseq-generate (plus ``options``); the text of its
    generate-SUBSET.txt."""
    run(["fairseq-generate", data, "--user-dir", USER_DIR, "--task", "audio_kd", "--path", checkpoint,
         "--gen-subset", subset, "--results-path", results, "--scoring", "wer", "--post-process", "letter",
         "--max-tokens", "320000", "--cpu", *options])
    with open(os.path.join(results, f"generate-{subset}.txt")) as f:
        return f.read()
