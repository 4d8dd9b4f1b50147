#!/usr/bin/env python3
"""Regenerate schema/data/ecs_fields.tsv from ECS's ecs_flat.yml (needs PyYAML)."""
import sys
import yaml

src = sys.argv[1] if len(sys.argv) > 1 else "../shared/schemas/ecs/ecs_flat.yml"
d = yaml.safe_load(open(src))
rows = sorted((k, v["type"], "array" if "array" in (v.get("normalize") or []) else "-") for k, v in d.items())
print("# ECS 9.4.0 field list: name <TAB> type <TAB> array|-")
print("# Generated from elastic/ecs generated/ecs/ecs_flat.yml (tag v9.4.0), Apache-2.0; see schema/data/ECS-LICENSE.txt.")
print("# Regenerate: python3 schema/data/gen_ecs_fields.py ../shared/schemas/ecs/ecs_flat.yml > schema/data/ecs_fields.tsv")
for r in rows:
    print("\t".join(r))
