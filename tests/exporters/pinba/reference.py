"""Pinba.Request as the `protobuf` package builds it: an independent encoder and decoder.

The schema is pinba2's / pinba_engine's pinba.proto (fields 1-23), built at run time.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

FIELDS = [
    # number, name, label, type
    (1, "hostname", "required", "string"),
    (2, "server_name", "required", "string"),
    (3, "script_name", "required", "string"),
    (4, "request_count", "required", "uint32"),
    (5, "document_size", "required", "uint32"),
    (6, "memory_peak", "required", "uint32"),
    (7, "request_time", "required", "float"),
    (8, "ru_utime", "required", "float"),
    (9, "ru_stime", "required", "float"),
    (10, "timer_hit_count", "repeated", "uint32"),
    (11, "timer_value", "repeated", "float"),
    (12, "timer_tag_count", "repeated", "uint32"),
    (13, "timer_tag_name", "repeated", "uint32"),
    (14, "timer_tag_value", "repeated", "uint32"),
    (15, "dictionary", "repeated", "string"),
    (16, "status", "optional", "uint32"),
    (17, "memory_footprint", "optional", "uint32"),
    (19, "schema", "optional", "string"),
    (20, "tag_name", "repeated", "uint32"),
    (21, "tag_value", "repeated", "uint32"),
    (22, "timer_ru_utime", "repeated", "float"),
    (23, "timer_ru_stime", "repeated", "float"),
]


@cache
def request_class() -> Any:
    file = descriptor_pb2.FileDescriptorProto(name="pinba.proto", package="Pinba", syntax="proto2")
    message = file.message_type.add(name="Request")
    labels = descriptor_pb2.FieldDescriptorProto
    for number, name, label, kind in FIELDS:
        message.field.add(
            name=name,
            number=number,
            label=getattr(labels, f"LABEL_{label.upper()}"),
            type=getattr(labels, f"TYPE_{kind.upper()}"),
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("Pinba.Request"))
