//! Bounds on what a document may be before it is parsed or trusted: size, nesting depth and
//! number of resources. A hostile document (60,000 nested brackets, 50 MB, a million routers) is
//! refused quickly, with an error naming where it went wrong, instead of costing seconds of CPU.
//!
//! * [`MAX_DOCUMENT_BYTES`] is checked first, on the raw text.
//! * Flow (bracketed) YAML nesting is bounded by [`flow_depth_overflow`], a linear scan run
//!   *before* the YAML parser: libyaml's cost grows with the product of size and flow depth.
//! * Both formats are read by `reader`, which stops at depth [`MAX_DEPTH`] and at
//!   [`MAX_RESOURCES`] resources while reading, before a tree is built.

use crate::error::{resource_label, ConfigError};

/// Largest document `parse_document` accepts (16 MiB). The gRPC limit
/// (`switchyard_proto::MAX_MESSAGE_BYTES`, 64 MiB) is larger; this is the tighter one.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// Deepest nesting of mappings and sequences in a document (the top-level mapping is depth 1;
/// `http.routers.NAME.tls.domains[0].sans` is depth 7).
pub const MAX_DEPTH: usize = 64;

/// Most resources one document may define: routers, services, middlewares, servers transports,
/// TLS options, TLS stores, certificate resolvers and `tls.certificates` entries together.
pub const MAX_RESOURCES: usize = 100_000;

/// One step of a path inside a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// The resource kind of the entries of a section, by the section's path.
fn section_kind(path: &[Seg]) -> Option<&'static str> {
    let keys: Vec<&str> = path
        .iter()
        .map(|s| match s {
            Seg::Key(k) => k.as_str(),
            Seg::Index(_) => "",
        })
        .collect();
    match keys.as_slice() {
        ["http", "routers"] => Some("router"),
        ["http", "services"] => Some("service"),
        ["http", "middlewares"] => Some("middleware"),
        ["http", "serversTransports"] => Some("serversTransport"),
        ["tls", "options"] => Some("tlsOption"),
        ["tls", "stores"] => Some("tlsStore"),
        ["certificatesResolvers"] => Some("certResolver"),
        _ => None,
    }
}

/// Is `path` a mapping of named resources that the reader hands over compacted (each entry as
/// its JSON text, see `reader`)? Exactly the sections of [`section_kind`].
pub(crate) fn is_compact_section(path: &[Seg]) -> bool {
    section_kind(path).is_some()
}

/// Is `path` a container whose entries are resources (counted against [`MAX_RESOURCES`])?
pub(crate) fn is_resource_section(path: &[Seg]) -> bool {
    section_kind(path).is_some()
        || path == [Seg::Key("tls".into()), Seg::Key("certificates".into())]
}

/// `a.b[0].c`
fn render(path: &[Seg]) -> Option<String> {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// An error at `path`: the resource it lies in (if any) and the field path inside it. Very deep
/// paths are shortened to their first and last steps.
pub(crate) fn error_at(path: &[Seg], message: impl Into<String>) -> ConfigError {
    let mut resource = None;
    let mut rest = path;
    for split in 1..=path.len().min(2) {
        if let (Some(kind), Some(Seg::Key(name))) = (section_kind(&path[..split]), path.get(split))
        {
            resource = Some(resource_label(kind, name));
            rest = &path[split + 1..];
        }
    }
    let field = if rest.len() > 12 {
        let head = render(&rest[..4]).unwrap_or_default();
        let tail = render(&rest[rest.len() - 4..]).unwrap_or_default();
        Some(format!("{head}…({} levels)…{tail}", rest.len() - 8))
    } else {
        render(rest)
    };
    ConfigError {
        resource,
        field,
        message: message.into(),
    }
}

/// The message for a container nested deeper than [`MAX_DEPTH`].
pub(crate) fn too_deep() -> String {
    format!("nested deeper than {MAX_DEPTH} levels (the limit)")
}

/// The message for a document with more than [`MAX_RESOURCES`] resources.
pub(crate) fn too_many_resources() -> String {
    format!("the document defines more than {MAX_RESOURCES} resources (the limit per document)")
}

/// Refuses a document larger than [`MAX_DOCUMENT_BYTES`] (the first check of
/// [`parse_document`](crate::parse_document); callers may run it before queueing a parse).
pub fn check_document_size(text: &str) -> Result<(), ConfigError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(ConfigError::new(format!(
            "document is {} bytes, larger than the limit of {MAX_DOCUMENT_BYTES} bytes ({} MiB); \
             split it into several applies",
            text.len(),
            MAX_DOCUMENT_BYTES / (1024 * 1024)
        )));
    }
    Ok(())
}

/// Where YAML flow nesting (`[` and `{`) first goes deeper than [`MAX_DEPTH`]: the byte offset
/// just after the offending bracket and the brackets open there (outermost first).
///
/// A linear scan that understands enough YAML to skip comments, quoted scalars, block scalars
/// (`|`, `>`) and brackets inside plain scalars of block context (`rule: PathRegexp(`^/{id}`)`).
/// It may overcount in contrived documents, never undercount a real flow collection, so the
/// parser never sees a document nested deeper than the limit in flow style. Block-style
/// nesting is bounded by the reader (and by the YAML parser itself at 128 levels).
pub(crate) fn flow_depth_overflow(text: &str) -> Option<(usize, Vec<u8>)> {
    let b = text.as_bytes();
    let mut stack: Vec<u8> = Vec::new();
    let mut i = 0;
    // Block context: is the current position where a node may start (only indentation or
    // indicators `- `, `? `, `: ` seen on this line)?
    let mut node_start = true;
    let mut line_indent = 0usize;
    let mut at_line_start = true;
    // Block scalar: skip lines indented more than this.
    let mut block_scalar_indent: Option<usize> = None;
    while i < b.len() {
        let c = b[i];
        if at_line_start {
            // Measure indentation; skip block scalar lines.
            let mut j = i;
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
            let indent = j - i;
            let blank = j >= b.len() || b[j] == b'\n' || b[j] == b'\r';
            if let Some(parent) = block_scalar_indent {
                if blank || indent > parent {
                    // Past the line's newline: the next iteration starts the next line.
                    i = skip_line(b, j) + 1;
                    continue;
                }
                block_scalar_indent = None;
            }
            at_line_start = false;
            if stack.is_empty() {
                line_indent = indent;
                node_start = true;
            }
            i = j;
            continue;
        }
        let prev_space = i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r');
        match c {
            b'\n' => {
                at_line_start = true;
                i += 1;
            }
            b'#' if prev_space => i = skip_line(b, i),
            b'\'' | b'"' if node_start || (!stack.is_empty() && flow_node_start(b, i)) => {
                i = skip_quoted(b, i);
                node_start = false;
            }
            b'[' | b'{' if node_start || !stack.is_empty() => {
                stack.push(c);
                i += 1;
                if stack.len() > MAX_DEPTH {
                    return Some((i, stack));
                }
                node_start = false;
            }
            b']' | b'}' if !stack.is_empty() => {
                stack.pop();
                i += 1;
            }
            b'|' | b'>' if stack.is_empty() && node_start => {
                block_scalar_indent = Some(line_indent);
                i = skip_line(b, i);
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'-' | b'?' | b':' if stack.is_empty() => {
                // An indicator followed by a space keeps a node start; `key: ` starts one.
                let next_space = matches!(b.get(i + 1), None | Some(b' ' | b'\t' | b'\n' | b'\r'));
                if next_space {
                    node_start = c == b':' || node_start;
                } else {
                    node_start = false;
                }
                i += 1;
            }
            _ => {
                if stack.is_empty() {
                    node_start = false;
                }
                i += 1;
            }
        }
    }
    None
}

/// In flow context, may a node start at `i` (previous non-blank is `[`, `{`, `,`, `:` or `?`)?
fn flow_node_start(b: &[u8], i: usize) -> bool {
    b[..i]
        .iter()
        .rev()
        .find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        .is_none_or(|c| matches!(c, b'[' | b'{' | b',' | b':' | b'?'))
}

/// The offset of the next line's first byte (or the end).
fn skip_line(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b'\n' {
        i += 1;
    }
    i
}

/// The offset just after the quoted scalar starting at `i` (or the end when unterminated).
fn skip_quoted(b: &[u8], i: usize) -> usize {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if q == b'"' && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == q {
            // `''` inside single quotes is an escaped quote: the scan resumes after it either way.
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

/// The 1-based line and column of byte offset `at`.
pub(crate) fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..at.min(text.len())];
    let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&c| c != b'\n').count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_depth_scan_counts_real_flow_collections_only() {
        let many = "[".repeat(100);
        let braces = "{".repeat(100);
        let doc = format!(
            "# a comment {many}\n\
             http:\n\
             \x20 routers:\n\
             \x20   a:\n\
             \x20     rule: Path(`/{many}`) && PathRegexp(`^/{braces}`)\n\
             \x20     service: \"{many}\"\n\
             \x20     middlewares: ['{many}', \"{braces}\"]  # {many}\n\
             \x20     priority: 1\n\
             tls:\n\
             \x20 certificates:\n\
             \x20   - certFile: |\n\
             \x20       {many}\n\
             \x20       {braces}\n\
             \x20     keyFile: >\n\
             \x20       {many}\n"
        );
        assert_eq!(flow_depth_overflow(&doc), None);
        let deep = format!("a: {}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(flow_depth_overflow(&deep), None);
        let deeper = format!(
            "a: {}{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        let (at, open) = flow_depth_overflow(&deeper).expect("too deep");
        assert_eq!(at, 3 + MAX_DEPTH + 1);
        assert_eq!(open.len(), MAX_DEPTH + 1);
        let mixed = format!("- {}x{}", "{a: [".repeat(40), "]}".repeat(40));
        assert!(flow_depth_overflow(&mixed).is_some());
    }

    #[test]
    fn errors_name_the_resource_and_field() {
        let p = |s: &[&str]| -> Vec<Seg> { s.iter().map(|k| Seg::Key(k.to_string())).collect() };
        let e = error_at(&p(&["http", "routers", "api", "tls"]), "m");
        assert_eq!(e.to_string(), "router \"api\": tls: m");
        let e = error_at(&p(&["certificatesResolvers", "le", "acme"]), "m");
        assert_eq!(e.to_string(), "certResolver \"le\": acme: m");
        let e = error_at(&p(&["http", "routers"]), "m");
        assert_eq!(e.to_string(), "http.routers: m");
        let mut long = p(&["tls", "options", "o"]);
        long.extend((0..20).map(Seg::Index));
        let e = error_at(&long, "m");
        assert_eq!(
            e.to_string(),
            "tlsOption \"o\": [0][1][2][3]…(12 levels)…[16][17][18][19]: m"
        );
    }
}
