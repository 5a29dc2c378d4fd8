"""The warehouse sink service: topics in, ClickHouse rows out; over chDB it also answers reads.

Start with ``sink.py`` (add / flush, batch markers held until their rows), ``app.py`` (the wiring
point and the consume-flush-commit loop) and ``reads.py`` (the read-only ClickHouse HTTP
interface over the sink's chDB path). The tables themselves are ``streams/warehouse_schema.py``.
"""

from warehouse.settings import WarehouseSettings
from warehouse.sink import WarehouseSink

__all__ = ["WarehouseSettings", "WarehouseSink"]
