//! `compress`: the encoding chosen from `Accept-Encoding` (Traefik's `getCompressionEncoding`:
//! q-values, ties broken by the configured order, `*` → `defaultEncoding` or the first
//! encoding, `identity`), and the media types that may be compressed.

use super::{FieldError, FieldErrors};
use crate::error::quote;
use crate::model::Compress;

/// A content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `gzip`
    Gzip,
    /// `br`
    Brotli,
    /// `zstd`
    Zstd,
}

impl Encoding {
    /// The `Content-Encoding` token.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
        }
    }

    fn parse(s: &str) -> Option<Encoding> {
        match s {
            "gzip" => Some(Encoding::Gzip),
            "br" => Some(Encoding::Brotli),
            "zstd" => Some(Encoding::Zstd),
            _ => None,
        }
    }
}

/// A media type with parameters (Go's `mime.ParseMediaType`: type lowercased, parameter
/// names lowercased, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// `type/subtype`
    pub essence: String,
    /// Parameters, sorted by name.
    pub params: Vec<(String, String)>,
}

impl MediaType {
    /// Parse a `Content-Type` value.
    pub fn parse(s: &str) -> Option<MediaType> {
        let mut parts = s.split(';');
        let essence = parts.next()?.trim().to_ascii_lowercase();
        let (t, sub) = essence.split_once('/')?;
        let token = |x: &str| {
            !x.is_empty()
                && x.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        if !token(t) || !token(sub) {
            return None;
        }
        let mut params = Vec::new();
        for p in parts {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let (k, v) = p.split_once('=')?;
            let k = k.trim().to_ascii_lowercase();
            if !token(&k) {
                return None;
            }
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            params.push((k, v.to_string()));
        }
        params.sort();
        Some(MediaType { essence, params })
    }

    /// Traefik's `parsedContentType.equals`: same type, and when this one has parameters,
    /// the same parameters.
    pub fn matches(&self, other: &MediaType) -> bool {
        self.essence == other.essence && (self.params.is_empty() || self.params == other.params)
    }
}

/// What the request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Compress with this encoding (when the response qualifies).
    Encode(Encoding),
    /// `identity` preferred, or no acceptable encoding: no compression.
    Identity,
}

/// A compiled `compress`.
#[derive(Debug, Clone)]
pub struct CompiledCompress {
    /// Configured encodings, in order of preference.
    pub encodings: Vec<Encoding>,
    /// `defaultEncoding`
    pub default: Option<Encoding>,
    /// Never compressed (always holds `application/grpc`).
    pub excluded: Vec<MediaType>,
    /// When set, only these are compressed.
    pub included: Vec<MediaType>,
    /// Bodies with a known length below this are sent as they are.
    pub min_size: u64,
}

impl CompiledCompress {
    fn priority(&self, token: &str) -> Option<usize> {
        match token {
            "*" => Some(0),
            "identity" => Some(self.encodings.len() + 1),
            t => Encoding::parse(t)
                .and_then(|e| self.encodings.iter().position(|x| *x == e))
                .map(|i| i + 1),
        }
    }

    /// The choice for a request's `Accept-Encoding` values (`None`: header absent).
    pub fn choose(&self, accept: Option<&[&str]>) -> Choice {
        let Some(values) = accept else {
            return self.default.map_or(Choice::Identity, Choice::Encode);
        };
        if values.len() == 1 && values[0].is_empty() {
            return Choice::Identity;
        }
        // (weight, priority, what it asks for)
        let mut best: Option<(f64, usize, Option<Choice>)> = None;
        for line in values {
            let line = line.replace(' ', "");
            for item in line.split(',') {
                let (token, param) = match item.split_once(';') {
                    Some((t, p)) => (t, Some(p)),
                    None => (item, None),
                };
                let Some(prio) = self.priority(token) else {
                    continue;
                };
                let mut weight = 1.0;
                if let Some(q) = param.and_then(|p| p.strip_prefix("q=")) {
                    let w = q.parse::<f64>().unwrap_or(0.0);
                    if w == 0.0 {
                        continue;
                    }
                    weight = w;
                }
                let better = match best {
                    None => true,
                    Some((bw, bp, _)) => weight > bw || (weight == bw && prio < bp),
                };
                if better {
                    // `None` stands for `*`.
                    let what = match token {
                        "*" => None,
                        "identity" => Some(Choice::Identity),
                        t => Some(Encoding::parse(t).map_or(Choice::Identity, Choice::Encode)),
                    };
                    best = Some((weight, prio, what));
                }
            }
        }
        match best {
            None => Choice::Identity,
            Some((_, _, None)) => self
                .default
                .or_else(|| self.encodings.first().copied())
                .map_or(Choice::Identity, Choice::Encode),
            Some((_, _, Some(c))) => c,
        }
    }

    /// Whether a response of this `Content-Type` may be compressed (an unparsable one may
    /// not; none at all may).
    pub fn type_allowed(&self, content_type: Option<&str>) -> bool {
        let Some(ct) = content_type.filter(|c| !c.is_empty()) else {
            return true;
        };
        let Some(mt) = MediaType::parse(ct) else {
            return false;
        };
        if !self.included.is_empty() && !self.included.iter().any(|i| i.matches(&mt)) {
            return false;
        }
        !self.excluded.iter().any(|e| e.matches(&mt))
    }

    /// Whether a request of this `Content-Type` is excluded (e.g. gRPC).
    pub fn request_excluded(&self, content_type: Option<&str>) -> bool {
        content_type
            .and_then(MediaType::parse)
            .is_some_and(|mt| self.excluded.iter().any(|e| e.essence == mt.essence))
    }
}

fn media_types(field: &str, list: &[String], errs: &mut FieldErrors) -> Vec<MediaType> {
    list.iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let m = MediaType::parse(s);
            if m.is_none() {
                errs.push(FieldError::new(
                    format!("{field}[{i}]"),
                    format!("invalid media type {}", quote(s)),
                ));
            }
            m
        })
        .collect()
}

/// Compile `compress`.
pub(crate) fn compile(c: &Compress) -> Result<CompiledCompress, FieldErrors> {
    let mut errs = FieldErrors::new();
    if !c.excluded_content_types.is_empty() && !c.included_content_types.is_empty() {
        errs.push(FieldError::new(
            "compress.includedContentTypes",
            "excludedContentTypes and includedContentTypes are mutually exclusive",
        ));
    }
    let mut excluded = vec![MediaType {
        essence: "application/grpc".into(),
        params: Vec::new(),
    }];
    excluded.extend(media_types(
        "compress.excludedContentTypes",
        &c.excluded_content_types,
        &mut errs,
    ));
    let included = media_types(
        "compress.includedContentTypes",
        &c.included_content_types,
        &mut errs,
    );
    let min_size = match c.min_response_body_bytes {
        None | Some(0) => 1024,
        Some(n) if n > 0 => n as u64,
        Some(n) => {
            errs.push(FieldError::new(
                "compress.minResponseBodyBytes",
                format!("must be 0 or more, got {n}"),
            ));
            1024
        }
    };
    let names: Vec<&str> = if c.encodings.is_empty() {
        vec!["gzip", "br", "zstd"]
    } else {
        c.encodings.iter().map(String::as_str).collect()
    };
    let mut encodings = Vec::new();
    for (i, n) in names.iter().enumerate() {
        match Encoding::parse(n) {
            Some(e) => encodings.push(e),
            None => errs.push(FieldError::new(
                format!("compress.encodings[{i}]"),
                format!(
                    "unsupported encoding {}, expected gzip, br or zstd",
                    quote(n)
                ),
            )),
        }
    }
    let default = if c.default_encoding.is_empty() {
        None
    } else {
        match Encoding::parse(&c.default_encoding) {
            Some(e) if encodings.contains(&e) => Some(e),
            _ => {
                errs.push(FieldError::new(
                    "compress.defaultEncoding",
                    format!(
                        "unsupported default encoding {}: it must be one of the encodings",
                        quote(&c.default_encoding)
                    ),
                ));
                None
            }
        }
    };
    if !errs.is_empty() || encodings.is_empty() {
        return Err(errs);
    }
    Ok(CompiledCompress {
        encodings,
        default,
        excluded,
        included,
        min_size,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn compress(encodings: &[&str], default: &str) -> CompiledCompress {
        compile(&Compress {
            encodings: encodings.iter().map(|s| s.to_string()).collect(),
            default_encoding: default.into(),
            ..Compress::default()
        })
        .unwrap()
    }

    /// (description, Accept-Encoding values, encodings, defaultEncoding, expected)
    type ChoiceCase<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a str, Choice);

    // Traefik's acceptencoding_test.go (Test_getCompressionEncoding).
    #[test]
    fn encoding_choice() {
        use Choice::{Encode, Identity};
        use Encoding::{Brotli as Br, Gzip, Zstd};
        let cases: &[ChoiceCase] = &[
            ("empty Accept-Encoding", &[""], &[], "", Identity),
            ("gzip > br", &["gzip, br"], &[], "", Encode(Gzip)),
            (
                "gzip > br > zstd",
                &["gzip, br, zstd"],
                &[],
                "",
                Encode(Gzip),
            ),
            ("known encoding", &["compress, gzip"], &[], "", Encode(Gzip)),
            ("unknown encodings", &["compress, rar"], &[], "", Identity),
            ("wildcard default", &["*"], &[], "", Encode(Gzip)),
            ("wildcard custom default", &["*"], &[], "br", Encode(Br)),
            (
                "follows weight",
                &["br;q=0.8, gzip;q=1.0, *;q=0.1"],
                &[],
                "",
                Encode(Gzip),
            ),
            (
                "identity higher",
                &["br;q=0.8, identity;q=1.0"],
                &[],
                "",
                Identity,
            ),
            (
                "identity equal",
                &["br;q=0.8, identity;q=0.8"],
                &[],
                "",
                Encode(Br),
            ),
            (
                "ignore unknown",
                &["compress;q=1.0, gzip;q=0.5"],
                &[],
                "",
                Encode(Gzip),
            ),
            (
                "fallback non-zero",
                &["compress;q=1.0, gzip, identity;q=0"],
                &[],
                "",
                Encode(Gzip),
            ),
            (
                "not acceptable identity",
                &["compress;q=1.0, identity;q=0"],
                &[],
                "",
                Identity,
            ),
            (
                "not acceptable wildcard",
                &["compress;q=1.0, *;q=0"],
                &[],
                "",
                Identity,
            ),
            ("non-zero above 0", &["gzip, *;q=0"], &[], "", Encode(Gzip)),
            (
                "zstd forbidden",
                &["zstd, gzip, br"],
                &["br", "gzip"],
                "",
                Encode(Br),
            ),
            (
                "weight, forbidden",
                &["br;q=0.8, gzip;q=1.0, *;q=0.1"],
                &["zstd", "br"],
                "",
                Encode(Br),
            ),
            (
                "mixed weight",
                &["gzip, br;q=0.9"],
                &["gzip", "br"],
                "",
                Encode(Gzip),
            ),
            (
                "zero weights",
                &["br;q=0, gzip;q=0, zstd;q=0"],
                &[],
                "",
                Identity,
            ),
            (
                "zero weights default",
                &["br;q=0, gzip;q=0, zstd;q=0"],
                &[],
                "br",
                Identity,
            ),
            (
                "same weight",
                &["br;q=1.0, gzip;q=1.0, zstd;q=1.0"],
                &[],
                "",
                Encode(Gzip),
            ),
            (
                "same weight order",
                &["br;q=1.0, zstd;q=1.0, gzip;q=1.0"],
                &[],
                "",
                Encode(Gzip),
            ),
            (
                "same weight default",
                &["br;q=1.0, zstd;q=1.0, gzip;q=1.0"],
                &[],
                "br",
                Encode(Gzip),
            ),
            (
                "zstd preferred by order",
                &["zstd, gzip"],
                &["zstd", "gzip"],
                "",
                Encode(Zstd),
            ),
        ];
        for (desc, accept, encodings, default, want) in cases {
            let c = compress(encodings, default);
            assert_eq!(c.choose(Some(accept)), *want, "{desc}");
        }
        assert_eq!(compress(&[], "").choose(None), Identity);
        assert_eq!(compress(&[], "zstd").choose(None), Encode(Zstd));
    }

    #[test]
    fn media_types() {
        let c = compile(&Compress {
            excluded_content_types: vec![
                "text/event-stream".into(),
                "text/plain; charset=ascii".into(),
            ],
            ..Compress::default()
        })
        .unwrap();
        assert!(c.type_allowed(Some("text/html")));
        assert!(c.type_allowed(None));
        assert!(!c.type_allowed(Some("text/event-stream")));
        assert!(!c.type_allowed(Some("application/grpc")));
        assert!(!c.type_allowed(Some("text/plain; charset=\"ascii\"")));
        assert!(c.type_allowed(Some("text/plain; charset=utf-8")));
        assert!(!c.type_allowed(Some("not a type")));
        assert!(!c.request_excluded(Some("application/grpc+proto; x=y")));
        assert!(c.request_excluded(Some("application/grpc")));
        let c = compile(&Compress {
            included_content_types: vec!["application/json".into()],
            ..Compress::default()
        })
        .unwrap();
        assert!(c.type_allowed(Some("application/json; charset=utf-8")));
        assert!(!c.type_allowed(Some("text/html")));
    }

    #[test]
    fn bad_options() {
        let e = compile(&Compress {
            encodings: vec!["gzip".into(), "lz4".into()],
            default_encoding: "zstd".into(),
            min_response_body_bytes: Some(-1),
            excluded_content_types: vec!["text/html".into()],
            included_content_types: vec!["bad".into()],
        })
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "compress.includedContentTypes",
                "compress.includedContentTypes[0]",
                "compress.minResponseBodyBytes",
                "compress.encodings[1]",
                "compress.defaultEncoding"
            ]
        );
    }
}
