//! # switchyard-config
//!
//! The configuration model, document parser, rule language and validation of Switchyard,
//! shared by the control plane (which validates every change before committing it through
//! Raft, and again inside the state machine) and the proxy (which compiles the config to route
//! traffic). Because both sides run the very same code, a change the proxy would reject is
//! rejected at the API with the message the proxy would have given.
//!
//! The crate is **pure**: no I/O, no async runtime, no files, no network, no clock, no
//! randomness. [`validate`] is deterministic (errors are sorted and deduplicated), which is
//! required for it to run inside the replicated state machine. No input panics (it is fuzzed):
//! rule nesting is bounded ([`rules::MAX_NESTING`]), long `&&`/`||` chains are built as
//! balanced trees, and reference-cycle detection is iterative.
//!
//! ## What is modelled
//!
//! Traefik v3 *dynamic* configuration, in YAML or JSON, with Traefik's camelCase names:
//! `http.routers`, `http.services` (`loadBalancer`, `weighted`, `mirroring`, `failover`),
//! `http.middlewares` (all 26 OSS kinds by name), `http.serversTransports`, and `tls`
//! (`certificates`, `options`, `stores`). Every struct denies unknown fields, and optional
//! fields are skipped when serializing, so parse → serialize → parse gives an equal value.
//! Durations and ports keep the form they were written in (string or integer). The one
//! additive extension is `zone`/`region` on load-balancer servers. The `tcp:` section is
//! modelled in [`tcp`] (routers, services, middlewares); UDP sections are rejected (empty ones
//! are tolerated).
//!
//! ## Supported vs. parsed-but-rejected
//!
//! A Traefik file that uses only supported features must apply unchanged and behave the same,
//! and a file using a feature we do not implement must be rejected loudly rather than half
//! applied. Therefore every known Traefik field *parses* (so the user gets a precise message,
//! not "unknown field"), and [`validate`] rejects what this version does not implement with
//! `... is not supported by this version of Switchyard`:
//!
//! * middlewares: supported kinds are `addPrefix`, `stripPrefix`, `stripPrefixRegex`,
//!   `replacePath`, `replacePathRegex`, `headers`, `ipAllowList`, `ipWhiteList`, `basicAuth`,
//!   `compress`, `rateLimit`, `inFlightReq`, `retry`,
//!   `redirectScheme`, `redirectRegex`, `chain` (compiled by [`middlewares`], which
//!   [`validate`] runs); the other kinds keep their raw value (so they round-trip) and are
//!   rejected;
//! * servers-transport `peerCertURI`, `tls.stores.*.defaultGeneratedCert`, TLS stores other
//!   than `default` (Traefik v3 ignores them; we refuse), `maxVersion` below TLS 1.2 (rustls
//!   serves 1.2 and 1.3; a lower `minVersion` is clamped to 1.2 by `switchyard-tls`),
//!   health-check mode `grpc`, strategies `hrw`/`leasttime`, `ruleSyntax: v2`, `@internal`
//!   references (except `default@internal` as a servers transport).
//!
//! Certificates, keys and CAs (`tls.certificates[].certFile/keyFile`,
//! `tls.stores.default.defaultCertificate`, `tls.options.*.clientAuth.caFiles`,
//! `serversTransports.*.rootCAs/certificates`) must hold inline PEM: `switchyard apply` and the
//! proxy's `--config-file` replace file paths by the files' contents before this crate sees
//! them. Parsing the PEM (and checking that a key matches its certificate) is done by the pure
//! `switchyard-tls` crate, which the control plane also runs before committing.
//!
//! ## Values that reach the wire
//!
//! [`validate`] also checks every value the proxy puts on the wire or dials, so that the
//! proxy never refuses a config the control plane accepted nor fails requests because of it:
//! header names are HTTP tokens (at most 65535 bytes) and header values have no control
//! character but horizontal tab (`headers` middleware, `healthCheck.headers`, and the
//! `redirectRegex` replacement, which becomes `Location`); server URLs are written
//! `scheme://authority` without whitespace, control characters or backslashes, with a host
//! made of `[A-Za-z0-9._~-]`, an IPv4 or a bracketed IPv6 address, and a non-zero port; a host
//! reached over TLS (https servers, or an https health check) and `serverName` are valid TLS
//! server names (DNS name or IP address); `healthCheck.hostname` is a host with an optional
//! port; request paths set by middlewares have no control characters, whitespace, `?` or `#`
//! (`healthCheck.path` may have a query); sticky cookie `path`/`domain` have no `;` or control
//! characters; and chains nest at most [`MAX_CHAIN_NESTING`] levels.
//!
//! ## Errors
//!
//! [`ConfigError`] has a `resource` (`router "api"`), a `field` path inside it
//! (`loadBalancer.servers[0].url`) and a `message`; it displays as
//! `router "api": rule: unknown matcher "Hots" at column 1`. [`parse_document`] stops at the
//! first error (YAML syntax errors carry line and column; type errors carry the resource and
//! field path because each resource is deserialized on its own with `serde_path_to_error`).
//! [`validate`] returns all problems at once as [`ConfigErrors`] (joined with `"; "`).
//! Names are quoted with double quotes everywhere, including in serde's own messages.
//!
//! ## Request paths
//!
//! [`paths`] is Traefik's entry-point path hygiene (`normalizePath`, `sanitizePath`,
//! `encodedCharacters`) and the dot-segment check of path-rewriting middlewares, shared by the
//! proxy and `switchyard explain`.
//!
//! ## Rules
//!
//! [`rules`] implements the v3 rule language exactly: Go precedence, backtick and Go
//! double-quoted strings, Traefik's case variants of matcher names, per-matcher checks, and
//! Traefik's request canonicalisation (canonical host, routing path with reserved `%XX` kept
//! encoded, Go query parsing). Errors carry a 1-based column. [`rules::CompiledRule`] also
//! offers `explain` (which leaves failed) and `host_constraint` (for the proxy's host index).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acme;
pub mod delta;
mod diff;
mod document;
pub mod duration;
mod error;
mod files;
mod incremental;
pub mod middlewares;
mod model;
pub mod paths;
pub mod rules;
pub mod scope;
mod syntax;
pub mod tcp;
mod validate;

// Parse before you trust: bounds on documents and the bounded reader.
mod limits;
mod reader;

pub use acme::{
    AcmeResolver, CertResolver, DnsChallenge, DnsPropagation, Eab, ExecHook, HttpChallenge,
    HttpReq, KeyPair, ManagedCertificate, ManagedTls, OcspStaple, Rfc2136, TicketKey, TlsChallenge,
};
pub use delta::{DeltaChange, DeltaError, Resource};
pub use diff::{diff, Change, ChangeAction, ResourceKind};
pub use document::{from_stream_value, from_value, parse_document};
pub use error::{quote, resource_label, ConfigError, ConfigErrors};
pub use files::inline_files;
pub use incremental::validate_change;
pub use model::*;
pub use validate::{validate, MAX_CHAIN_NESTING, MAX_USER_PRIORITY};

pub use limits::{check_document_size, MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_RESOURCES};

#[cfg(test)]
mod tests;
