//! Reads a JSON or YAML document into a `serde_json::Value`, enforcing while it reads what
//! `serde_json::Value` and `serde_norway::Value` would let through: duplicate keys are refused
//! (serde_json alone keeps the last one), nesting is bounded by [`MAX_DEPTH`] and resources by
//! [`MAX_RESOURCES`] (so a million-resource document stops at the 100,001st, before a tree is
//! built), JSON is strict RFC 8259 (no trailing comma), YAML merge keys (`<<`) are applied, and
//! every error names the resource and field where it happened.
//!
//! **Compacted resources.** The entries of the named-resource sections of `section_kind`
//! (`http.routers`, `http.services`, …, see [`limits::is_compact_section`]) come out as a
//! `Value::String` holding the entry's JSON text, not as a tree: a router's two-key mapping is a
//! ~640-byte B-tree node plus strings as a `Value`, ~80 bytes as text, and the YAML parser's event
//! buffer is still alive while the tree is built, so this is what bounds the peak memory of
//! reading a 100k-router document (issue 12, BENCHMARKS.md "Proxy memory per router").
//! `document::from_reader_value` turns each entry back into its `Value` (serde_json round-trips
//! its own `Value` exactly) one resource at a time, just before deserializing it.
//!
//! [`limits::is_compact_section`]: crate::limits::is_compact_section

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{quote, ConfigError};
use crate::limits::{
    error_at, is_compact_section, is_resource_section, too_deep, too_many_resources, Seg,
    MAX_DEPTH, MAX_RESOURCES,
};

/// What the reader knows about the first problem, beyond the parser's message.
#[derive(Default)]
struct Context {
    /// YAML: `<<` is a merge key.
    yaml: bool,
    /// A problem found by this reader (duplicate key, depth, resources).
    problem: Option<ConfigError>,
    /// The innermost path where a parser error surfaced.
    at: Option<Vec<Seg>>,
    resources: usize,
}

impl Context {
    /// The error to report: this reader's own problem (with the parser's position), else the
    /// parser's message at the innermost path where it surfaced.
    fn into_error(
        self,
        format: &str,
        message: String,
        position: Option<(usize, usize)>,
    ) -> ConfigError {
        if let Some(mut problem) = self.problem {
            if let Some((line, column)) = position {
                problem.message = format!("{} (at line {line} column {column})", problem.message);
            }
            return problem;
        }
        error_at(
            &self.at.unwrap_or_default(),
            format!("invalid {format}: {message}"),
        )
    }
}

/// Parses `text` as strict JSON.
pub(crate) fn json(text: &str) -> Result<Value, ConfigError> {
    let ctx = RefCell::new(Context::default());
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = Node {
        path: Vec::new(),
        ctx: &ctx,
    };
    seed.deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            let position = Some((e.line(), e.column()));
            ctx.into_inner().into_error("JSON", e.to_string(), position)
        })
}

/// Parses `text` as YAML (one document). Flow nesting must have been bounded before
/// ([`crate::limits::flow_depth_overflow`]): the YAML parser reads every event first.
pub(crate) fn yaml(text: &str) -> Result<Value, ConfigError> {
    let ctx = RefCell::new(Context {
        yaml: true,
        ..Context::default()
    });
    let seed = Node {
        path: Vec::new(),
        ctx: &ctx,
    };
    seed.deserialize(serde_norway::Deserializer::from_str(text))
        .map_err(|e| {
            let position = e.location().map(|l| (l.line(), l.column()));
            ctx.into_inner().into_error("YAML", e.to_string(), position)
        })
}

struct Node<'c> {
    path: Vec<Seg>,
    ctx: &'c RefCell<Context>,
}

impl Node<'_> {
    fn fail<E: de::Error>(&self, problem: ConfigError) -> E {
        let msg = problem.to_string();
        self.ctx.borrow_mut().problem = Some(problem);
        E::custom(msg)
    }

    /// Records `path` as where an error surfaced, unless an inner container already did.
    fn surfaced(&self, path: &[Seg]) {
        let mut ctx = self.ctx.borrow_mut();
        if ctx.at.is_none() {
            ctx.at = Some(path.to_vec());
        }
    }

    fn child(&self, seg: Seg) -> Node<'_> {
        let mut path = self.path.clone();
        path.push(seg);
        Node {
            path,
            ctx: self.ctx,
        }
    }

    /// Checks the depth limit on entering a container here.
    fn enter<E: de::Error>(&self) -> Result<(), E> {
        if self.path.len() >= MAX_DEPTH {
            return Err(self.fail(error_at(&self.path, too_deep())));
        }
        Ok(())
    }

    /// Counts one entry of this container when it is a resource section.
    fn count_resource<E: de::Error>(&self) -> Result<(), E> {
        if is_resource_section(&self.path) {
            let n = {
                let mut ctx = self.ctx.borrow_mut();
                ctx.resources += 1;
                ctx.resources
            };
            if n > MAX_RESOURCES {
                return Err(self.fail(error_at(&self.path, too_many_resources())));
            }
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut out = Vec::new();
        loop {
            let child = self.child(Seg::Index(out.len()));
            match seq.next_element_seed(child) {
                Ok(Some(v)) => out.push(v),
                Ok(None) => break,
                Err(e) => {
                    self.surfaced(&self.path);
                    return Err(e);
                }
            }
            self.count_resource()?;
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut out = Map::new();
        let mut merges = Vec::new();
        let compact = is_compact_section(&self.path);
        loop {
            let key = match map.next_key::<String>() {
                Ok(Some(k)) => k,
                Ok(None) => break,
                Err(e) => {
                    self.surfaced(&self.path);
                    return Err(e);
                }
            };
            if out.contains_key(&key) {
                let mut at = self.path.clone();
                at.push(Seg::Key(key.clone()));
                let problem = if is_resource_section(&self.path) {
                    // The duplicated key is a resource name: the resource is defined twice.
                    error_at(
                        &at,
                        format!("defined twice (duplicate key {})", quote(&key)),
                    )
                } else {
                    error_at(&at, format!("duplicate key {}", quote(&key)))
                };
                return Err(self.fail(problem));
            }
            let merge = key == "<<" && self.ctx.borrow().yaml;
            if !merge {
                self.count_resource()?;
            }
            let child = self.child(Seg::Key(key.clone()));
            let path = child.path.clone();
            match map.next_value_seed(child) {
                Ok(v) if merge => merges.push(v),
                Ok(v) => {
                    out.insert(key, if compact { compacted(v) } else { v });
                }
                Err(e) => {
                    self.surfaced(&path);
                    return Err(e);
                }
            }
        }
        // YAML merge keys: entries of the merged mappings that the mapping does not set itself
        // (the first merged mapping wins among them), as `serde_norway`'s `apply_merge`.
        for merged in merges {
            let maps = match merged {
                Value::Object(m) => vec![m],
                Value::Array(items) if items.iter().all(Value::is_object) => items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::Object(m) => Some(m),
                        _ => None,
                    })
                    .collect(),
                _ => {
                    let mut at = self.path.clone();
                    at.push(Seg::Key("<<".into()));
                    return Err(self.fail(error_at(
                        &at,
                        "a merge key must be given a mapping or a sequence of mappings",
                    )));
                }
            };
            for m in maps {
                for (k, v) in m {
                    if !out.contains_key(&k) {
                        self.count_resource()?;
                        let v = if compact {
                            compacted(v)
                        } else {
                            // Merged from a mapping read elsewhere (`<<` path): compact its
                            // resource sections now, where it lands.
                            let mut at = self.path.clone();
                            at.push(Seg::Key(k.clone()));
                            compact_sections(&mut at, v)
                        };
                        out.insert(k, v);
                    }
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// A resource entry as its JSON text (see the module docs).
fn compacted(v: Value) -> Value {
    Value::String(v.to_string())
}

/// Compacts the entries of the resource sections in `v`, read at another path than `at` (a
/// merged mapping), as the reader would have at `at`.
fn compact_sections(at: &mut Vec<Seg>, v: Value) -> Value {
    match v {
        Value::Object(m) if is_compact_section(at) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, compacted(v))).collect())
        }
        // Resource sections are at most two levels deep (`http.routers`).
        Value::Object(m) if at.len() < 2 => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    at.push(Seg::Key(k.clone()));
                    let v = compact_sections(at, v);
                    at.pop();
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}
