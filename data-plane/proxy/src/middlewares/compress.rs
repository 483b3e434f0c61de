//! `compress`: on the request, the encoding is chosen from `Accept-Encoding` (none for `HEAD`
//! and for excluded request types such as gRPC); on the response, the body is encoded with
//! gzip (flate2), brotli or zstd when it qualifies: `Vary: Accept-Encoding` is added, and
//! nothing is encoded when the response already has a `Content-Encoding`, is a range
//! (`Content-Range`, 206), has no body (204, 304, empty), has an excluded (or not included)
//! type, or a known length below `minResponseBodyBytes`. A body of unknown length is
//! encoded as it streams: each chunk is compressed and flushed when it arrives (so a streamed
//! response stays streamed); unlike Traefik, which buffers up to `minResponseBodyBytes`
//! first, it is encoded whatever its final size.

use std::io::Write as _;

use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    VARY,
};
use http::{Method, Response, StatusCode};
use http_body::Body as _;
use switchyard_config::middlewares::compress::{Choice, CompiledCompress, Encoding};

use super::{MwRequest, ResponseCtx};
use crate::body::ProxyBody;

/// Request phase: record the chosen encoding.
pub(crate) fn on_request(c: &CompiledCompress, i: usize, req: &mut MwRequest<'_>) {
    let h = &req.parts.headers;
    if req.parts.method == Method::HEAD
        || c.request_excluded(h.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()))
    {
        return;
    }
    let values: Vec<&str> = h
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let accept = h.contains_key(ACCEPT_ENCODING).then_some(&values[..]);
    if let Choice::Encode(e) = c.choose(accept) {
        req.ctx.compress = Some((i, e));
    }
}

/// Response phase of middleware `i`.
pub(crate) fn on_response(
    c: &CompiledCompress,
    i: usize,
    ctx: &ResponseCtx,
    resp: &mut Response<ProxyBody>,
) {
    let Some((at, enc)) = ctx.compress else {
        return;
    };
    if at != i {
        return;
    }
    let status = resp.status();
    let known_len = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .or_else(|| resp.body().size_hint().exact());
    let h = resp.headers_mut();
    h.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    if h.contains_key(CONTENT_ENCODING)
        || h.contains_key(CONTENT_RANGE)
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational()
        || !c.type_allowed(h.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()))
        || known_len.is_some_and(|n| n < c.min_size)
        || resp.body().is_end_stream()
    {
        return;
    }
    let Ok(encoder) = Encoder::new(enc) else {
        return;
    };
    let h = resp.headers_mut();
    h.remove(CONTENT_LENGTH);
    h.insert(CONTENT_ENCODING, HeaderValue::from_static(enc.name()));
    let body = std::mem::replace(resp.body_mut(), ProxyBody::full(Bytes::new()));
    *resp.body_mut() = body.encoded(encoder);
}

/// A streaming encoder writing into memory.
pub(crate) enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    /// Default levels: gzip 6, brotli quality 6 (Go's brotli default), zstd 3.
    fn new(e: Encoding) -> std::io::Result<Encoder> {
        Ok(match e {
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
            Encoding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                6,
                22,
            ))),
            Encoding::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3)?),
        })
    }

    /// Encode `data` and flush: what is ready to send.
    pub(crate) fn push(&mut self, data: &[u8]) -> std::io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(w) => {
                w.write_all(data)?;
                w.flush()?;
                w.get_mut()
            }
            Encoder::Brotli(w) => {
                w.write_all(data)?;
                w.flush()?;
                w.get_mut()
            }
            Encoder::Zstd(w) => {
                w.write_all(data)?;
                w.flush()?;
                w.get_mut()
            }
        };
        Ok(Bytes::from(std::mem::take(out)))
    }

    /// End the stream: the last bytes.
    pub(crate) fn finish(self) -> std::io::Result<Bytes> {
        let v = match self {
            Encoder::Gzip(w) => w.finish()?,
            Encoder::Brotli(w) => w.into_inner(),
            Encoder::Zstd(w) => w.finish()?,
        };
        Ok(Bytes::from(v))
    }
}
