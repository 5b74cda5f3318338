"""Results -> rows and tables, with no torch and no OpenCV.

records.py     the shared parts of every record, and the rows of classify --json and batch (BATCH)
live.py        the rows of timeline (TIMELINE) and webcam --out (WEBCAM)
embeddings.py  the rows of embed (EMBED)
evaluation.py  evaluate's report, confusion matrix and tables; train's validation figures
formats.py     the format from an --out name, a writer per format (get_writer), rows read back for --resume
parquet.py     Parquet files for `vivit batch` and `vivit embed` (pyarrow, imported when used)
tables.py      the rich tables: one video's top-k, a timeline's segments
pictures.py    the names a --plot may have (.png, .jpg)
"""

from __future__ import annotations

from vivit_cli.writers.formats import RecordWriter, format_for, get_writer, read_records
from vivit_cli.writers.records import error_record, result_record

__all__ = ["RecordWriter", "error_record", "format_for", "get_writer", "read_records", "result_record"]
