"""Operations: `stockpipe cycle`, one evening's work (ingest, score, monitor, retrain when due,
record), safe to repeat and to kill, one at a time per project."""
