"""Data: read a labelled text source, split it reproducibly, tokenize it once (cached), serve batches.

The result of `load_splits` is three `datasets.Dataset`s (train / valid / test) with the columns `text` (and
`text_pair` for pair tasks), `label` (a ClassLabel: class ids 0..K-1 and their names, the same in every split)
and `index` (the row id in the pooled data, or in the official test split), so predictions of different runs
on the same data config line up item by item.

A module a concern: sources (reading sources and Hub layouts), labels (labels and classes), splits, tokenizing
(and its cache), batches. Their public names are re-exported here, once: `from bertcmp.data import ...`.
"""

from bertcmp.data.sources import (as_texts, column, FILE_BUILDERS, hub_source, is_hub_source, load_files, read_source,
                                  reading_options, shown_texts)
from bertcmp.data.labels import empty_rows, is_unlabelled, label_classes, MAX_CLASSES, NEGATIVE_LABELS, POSITIVE_LABELS
from bertcmp.data.splits import classes, load_splits, SPLITS
from bertcmp.data.tokenizing import (cache_entry, encode, encode_pairs, encode_texts, Encoded, Encodings, flatten,
                                     full_lengths, reads_type_ids, tokenize_splits)
from bertcmp.data.batches import collate, LengthGroupedBatches, make_loader, sorted_batches

__all__ = ["as_texts", "column", "FILE_BUILDERS", "hub_source", "is_hub_source", "load_files", "read_source", "reading_options", "shown_texts",
           "empty_rows", "is_unlabelled", "label_classes", "MAX_CLASSES", "NEGATIVE_LABELS", "POSITIVE_LABELS",
           "classes", "load_splits", "SPLITS", "cache_entry", "encode", "encode_pairs", "encode_texts", "Encoded",
           "Encodings", "flatten", "full_lengths", "reads_type_ids", "tokenize_splits", "collate",
           "LengthGroupedBatches", "make_loader", "sorted_batches"]
