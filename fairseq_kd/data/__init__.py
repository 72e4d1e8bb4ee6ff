"""Datasets and file formats: manifests, labels, filterbank features, teacher sidecars."""
