//! Generates the static field registry (`FIELDS`) and one constant per field
//! from `data/ecs_fields.tsv` and `data/mlsoc_fields.tsv`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::{env, fs, path::Path};

fn main() {
    let mut fields: BTreeMap<String, (String, bool, bool)> = BTreeMap::new();
    for (file, ecs) in [
        ("data/ecs_fields.tsv", true),
        ("data/mlsoc_fields.tsv", false),
    ] {
        println!("cargo::rerun-if-changed={file}");
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file}: {e}"));
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            assert!(
                cols.len() >= 3,
                "{file}:{}: expected name, type, array",
                n + 1
            );
            let prev = fields.insert(
                cols[0].to_string(),
                (cols[1].to_string(), cols[2] == "array", ecs),
            );
            assert!(
                prev.is_none(),
                "{file}:{}: field {} listed twice",
                n + 1,
                cols[0]
            );
        }
    }
    let mut table = String::new();
    let mut consts = String::new();
    let mut const_names = BTreeMap::new();
    writeln!(
        table,
        "pub(crate) static FIELDS: [FieldDef; {}] = [",
        fields.len()
    )
    .unwrap();
    for (i, (name, (ty, array, ecs))) in fields.iter().enumerate() {
        let ty = match ty.as_str() {
            "keyword" | "constant_keyword" => "Keyword",
            "wildcard" => "Wildcard",
            "match_only_text" | "text" => "Text",
            "long" | "integer" => "Long",
            "float" | "double" | "scaled_float" => "Float",
            "boolean" => "Boolean",
            "date" => "Date",
            "ip" => "Ip",
            "object" | "nested" => "Object",
            "flattened" => "Flattened",
            "geo_point" => "GeoPoint",
            other => panic!("unknown ECS type {other} for {name}"),
        };
        writeln!(
            table,
            "    FieldDef {{ name: {name:?}, ty: FieldType::{ty}, array: {array}, ecs: {ecs} }},"
        )
        .unwrap();
        let cname: String = name
            .replace('@', "AT_")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        if let Some(other) = const_names.insert(cname.clone(), name.clone()) {
            panic!("constant {cname} would name both {other} and {name}");
        }
        writeln!(
            consts,
            "    /// `{name}`\n    pub const {cname}: FieldId = FieldId({i});"
        )
        .unwrap();
    }
    table.push_str("];\n");
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("fields_gen.rs");
    fs::write(
        out,
        format!("{table}\n/// One constant per registered field, named after it (`url.path` is `URL_PATH`).\npub mod f {{\n    use super::FieldId;\n{consts}}}\n"),
    )
    .unwrap();
}
