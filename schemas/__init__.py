"""The Avro schemas of every contract topic (`avro/*.avsc`), the single source of truth."""

from pathlib import Path

AVRO_DIR = Path(__file__).parent / "avro"
