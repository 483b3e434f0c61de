//! `contentType`: a response without `Content-Type` gets the type Go's
//! `http.DetectContentType` finds in its first data (at most 512 bytes), as Go's server does
//! when Traefik lets it (the proxy otherwise never adds one). An empty body, a status without
//! body, or a response with `Transfer-Encoding` set by the backend get none.

use http::header::{HeaderValue, CONTENT_TYPE};
use http::Response;
use http_body_util::BodyExt;

use crate::body::ProxyBody;

/// Response phase (awaits the first data frame when there is no `Content-Type`).
pub(crate) async fn on_response(sniff: bool, resp: &mut Response<ProxyBody>) {
    let status = resp.status();
    if !sniff
        || resp.headers().contains_key(CONTENT_TYPE)
        || status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED
    {
        return;
    }
    let mut body = std::mem::replace(resp.body_mut(), ProxyBody::full(bytes::Bytes::new()));
    // The first non-empty data frame (trailers or the end: nothing to sniff).
    let first = loop {
        match body.frame().await {
            Some(Ok(f)) => match f.into_data() {
                Ok(d) if d.is_empty() => continue,
                Ok(d) => break Some(d),
                Err(_) => break None,
            },
            _ => break None,
        }
    };
    match first {
        Some(d) => {
            let ct = detect(&d);
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            *resp.body_mut() = ProxyBody::prefixed(d, body);
        }
        None => *resp.body_mut() = body,
    }
}

const HTML_TAGS: [&[u8]; 17] = [
    b"<!DOCTYPE HTML",
    b"<HTML",
    b"<HEAD",
    b"<SCRIPT",
    b"<IFRAME",
    b"<H1",
    b"<DIV",
    b"<FONT",
    b"<TABLE",
    b"<A",
    b"<STYLE",
    b"<TITLE",
    b"<B",
    b"<BODY",
    b"<BR",
    b"<P",
    b"<!--",
];

/// (mask, pattern, skip leading white space, type)
const MASKED: [(&[u8], &[u8], bool, &str); 13] = [
    (b"\xFF\xFF\xFF\xFF\xFF", b"<?xml", true, "text/xml; charset=utf-8"),
    (b"\xFF\xFF\x00\x00", b"\xFE\xFF\x00\x00", false, "text/plain; charset=utf-16be"),
    (b"\xFF\xFF\x00\x00", b"\xFF\xFE\x00\x00", false, "text/plain; charset=utf-16le"),
    (b"\xFF\xFF\xFF\x00", b"\xEF\xBB\xBF\x00", false, "text/plain; charset=utf-8"),
    (
        b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF\xFF\xFF",
        b"RIFF\x00\x00\x00\x00WEBPVP",
        false,
        "image/webp",
    ),
    (b"\xFF\xFF\xFF\xFF", b".snd", false, "audio/basic"),
    (
        b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF",
        b"FORM\x00\x00\x00\x00AIFF",
        false,
        "audio/aiff",
    ),
    (b"\xFF\xFF\xFF", b"ID3", false, "audio/mpeg"),
    (b"\xFF\xFF\xFF\xFF\xFF", b"OggS\x00", false, "application/ogg"),
    (b"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF", b"MThd\x00\x00\x00\x06", false, "audio/midi"),
    (
        b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF",
        b"RIFF\x00\x00\x00\x00AVI ",
        false,
        "video/avi",
    ),
    (
        b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF",
        b"RIFF\x00\x00\x00\x00WAVE",
        false,
        "audio/wave",
    ),
    (
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xFF\xFF",
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00LP",
        false,
        "application/vnd.ms-fontobject",
    ),
];

/// Exact prefixes, in Go's order (after the masked signatures they interleave with; the
/// order only matters between signatures that can both match, which these cannot).
const EXACT: [(&[u8], &str); 20] = [
    (b"%PDF-", "application/pdf"),
    (b"%!PS-Adobe-", "application/postscript"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\x00\x00\x02\x00", "image/x-icon"),
    (b"BM", "image/bmp"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x89PNG\x0D\x0A\x1A\x0A", "image/png"),
    (b"\xFF\xD8\xFF", "image/jpeg"),
    (b"\x1A\x45\xDF\xA3", "video/webm"),
    (b"\x00\x01\x00\x00", "font/ttf"),
    (b"OTTO", "font/otf"),
    (b"ttcf", "font/collection"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"\x1F\x8B\x08", "application/x-gzip"),
    (b"PK\x03\x04", "application/zip"),
    (b"Rar!\x1A\x07\x00", "application/x-rar-compressed"),
    (b"Rar!\x1A\x07\x01\x00", "application/x-rar-compressed"),
    (b"\x00\x61\x73\x6D", "application/wasm"),
];

fn is_ws(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

fn is_tt(b: u8) -> bool {
    b == b' ' || b == b'>'
}

fn html(data: &[u8], tag: &[u8]) -> bool {
    if data.len() < tag.len() + 1 {
        return false;
    }
    for (i, &t) in tag.iter().enumerate() {
        let mut d = data[i];
        if t.is_ascii_uppercase() {
            d &= 0xDF;
        }
        if d != t {
            return false;
        }
    }
    is_tt(data[tag.len()])
}

fn masked(data: &[u8], mask: &[u8], pat: &[u8]) -> bool {
    data.len() >= pat.len()
        && pat
            .iter()
            .zip(mask)
            .zip(data)
            .all(|((p, m), d)| d & m == *p)
}

fn mp4(data: &[u8]) -> bool {
    if data.len() < 12 {
        return false;
    }
    let size = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    if data.len() < size || !size.is_multiple_of(4) || &data[4..8] != b"ftyp" {
        return false;
    }
    let mut st = 8;
    while st < size {
        if st != 12 && data.get(st..st + 3) == Some(b"mp4") {
            return true;
        }
        st += 4;
    }
    false
}

/// Go's `http.DetectContentType`.
pub(crate) fn detect(data: &[u8]) -> &'static str {
    let data = &data[..data.len().min(512)];
    let ws = data.iter().take_while(|b| is_ws(**b)).count();
    let trimmed = &data[ws..];
    if HTML_TAGS.iter().any(|t| html(trimmed, t)) {
        return "text/html; charset=utf-8";
    }
    for (mask, pat, skip_ws, ct) in MASKED {
        let d = if skip_ws { trimmed } else { data };
        if masked(d, mask, pat) {
            return ct;
        }
    }
    for (pat, ct) in EXACT {
        if data.starts_with(pat) {
            return ct;
        }
    }
    if mp4(data) {
        return "video/mp4";
    }
    let binary = |b: &u8| matches!(*b, 0x00..=0x08 | 0x0B | 0x0E..=0x1A | 0x1C..=0x1F);
    if !trimmed.iter().any(binary) {
        return "text/plain; charset=utf-8";
    }
    "application/octet-stream"
}

#[cfg(test)]
mod tests {
    use super::detect;

    /// Cases of Go's `net/http/sniff_test.go`.
    #[test]
    fn go_sniff_cases() {
        for (data, want) in [
            (&b""[..], "text/plain; charset=utf-8"),
            (b"\x01\x02\x03", "application/octet-stream"),
            (b"Hello, World!\n", "text/plain; charset=utf-8"),
            (b"  <!DOCTYPE HTML>...", "text/html; charset=utf-8"),
            (
                b"<HtMl><bOdY>blah blah blah</body></html>",
                "text/html; charset=utf-8",
            ),
            (b"\n<?xml!", "text/xml; charset=utf-8"),
            (b"<html>", "text/html; charset=utf-8"),
            (b"<htmlx", "text/plain; charset=utf-8"),
            (b"%PDF-1.4", "application/pdf"),
            (b"GIF87a", "image/gif"),
            (b"\x89PNG\x0D\x0A\x1A\x0A", "image/png"),
            (b"\xFF\xD8\xFF", "image/jpeg"),
            (b"\x1F\x8B\x08", "application/x-gzip"),
            (b"PK\x03\x04", "application/zip"),
            (b"OggS\x00", "application/ogg"),
            (b"\xef\xbb\xbfHi", "text/plain; charset=utf-8"),
            (
                b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom<\x06t\xbfmdat",
                "video/mp4",
            ),
            (b"RIFF,O\n\x00WAVEfmt \x10\x00", "audio/wave"),
            (b"{\"a\": 1}", "text/plain; charset=utf-8"),
        ] {
            assert_eq!(detect(data), want, "{data:?}");
        }
    }
}
