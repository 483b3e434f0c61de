//! Strict JSON (RFC 8259) into a `serde_json::Value`: duplicate keys, trailing commas and any
//! other syntax error are refused (serde_json alone keeps the last of duplicate keys), nesting is
//! bounded by [`MAX_DEPTH`] and resources by [`MAX_RESOURCES`] while reading, and every error
//! names the resource and field where it happened.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{quote, ConfigError};
use crate::limits::{
    error_at, is_resource_section, too_deep, too_many_resources, Seg, MAX_DEPTH, MAX_RESOURCES,
};

/// What the reader knows about the first problem, beyond serde_json's message.
#[derive(Default)]
struct Context {
    /// A problem found by this reader (duplicate key, depth, resources).
    problem: Option<ConfigError>,
    /// The innermost path where a syntax error surfaced.
    at: Option<Vec<Seg>>,
    resources: usize,
}

/// Parses `text` as strict JSON.
pub(crate) fn parse(text: &str) -> Result<Value, ConfigError> {
    let ctx = RefCell::new(Context::default());
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = Node {
        path: Vec::new(),
        ctx: &ctx,
    };
    let result = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match result {
        Ok(v) => Ok(v),
        Err(e) => {
            let ctx = ctx.into_inner();
            let position = format!("at line {} column {}", e.line(), e.column());
            if let Some(mut problem) = ctx.problem {
                problem.message = format!("{} ({position})", problem.message);
                return Err(problem);
            }
            let path = ctx.at.unwrap_or_default();
            let msg = e.to_string();
            Err(error_at(&path, format!("invalid JSON: {msg}")))
        }
    }
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
            self.count_resource()?;
            let child = self.child(Seg::Key(key.clone()));
            let path = child.path.clone();
            match map.next_value_seed(child) {
                Ok(v) => {
                    out.insert(key, v);
                }
                Err(e) => {
                    self.surfaced(&path);
                    return Err(e);
                }
            }
        }
        Ok(Value::Object(out))
    }
}
