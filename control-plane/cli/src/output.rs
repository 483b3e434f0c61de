//! Rendering answers as tables, JSON or YAML.
//!
//! JSON and YAML output of `get` is always a Traefik v3 dynamic configuration document (for one
//! resource, a document holding just that resource), so it can be edited and applied again. The
//! config version a read reflects goes to standard error, keeping standard output a clean document.

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use crate::args::Format;

/// Prints a serializable value as JSON or YAML.
pub fn print_data<T: Serialize>(format: Format, v: &T) -> Result<()> {
    match format {
        Format::Yaml => print!("{}", serde_norway::to_string(v)?),
        _ => println!("{}", serde_json::to_string_pretty(v)?),
    }
    Ok(())
}

/// Prints rows under a header, columns padded to their widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let pad = widths[i].saturating_sub(c.chars().count()) + 2;
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// A compact one-cell rendering of a JSON list or value.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.is_empty() => "-".into(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}
