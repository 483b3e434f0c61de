//! `--cache-dir`: the last config version the proxy applied, so it can start serving it when no
//! control node is reachable.
//!
//! One file, `config.json` = `{"version": N, "config": <Traefik dynamic config>}`, replaced
//! atomically (write to a temporary file, fsync, rename) after every successful apply. The file
//! holds private keys (uploaded and ACME-issued certificates), so it is created with mode 0600.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use switchyard_config::DynamicConfig;

use crate::errors::ProxyError;

const FILE: &str = "config.json";

#[derive(Serialize)]
struct CachedRef<'a> {
    version: u64,
    config: &'a DynamicConfig,
}

#[derive(Deserialize)]
struct Cached {
    version: u64,
    config: serde_json::Value,
}

/// The cache directory of one proxy.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    file: String,
}

impl Cache {
    /// Uses (and creates) `dir`, for a proxy of the default cluster.
    pub fn open(dir: &Path) -> Result<Self, ProxyError> {
        Self::open_for(dir, switchyard_config::scope::DEFAULT_CLUSTER)
    }

    /// Uses (and creates) `dir` for a proxy of `cluster`: `config.json` for the default
    /// cluster, `config-CLUSTER.json` for another, so a proxy moved to another cluster never
    /// starts from (nor announces the version of) a config cut for the old one.
    pub fn open_for(dir: &Path, cluster: &str) -> Result<Self, ProxyError> {
        fs::create_dir_all(dir)
            .map_err(|e| ProxyError::Cache(format!("{}: {e}", dir.display())))?;
        let file = if cluster == switchyard_config::scope::DEFAULT_CLUSTER {
            FILE.to_string()
        } else {
            format!("config-{cluster}.json")
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
        })
    }

    /// The cache file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.file)
    }

    /// The cached version and config, if there is a readable one. A corrupt cache is reported and
    /// ignored (the control plane will send a snapshot).
    pub fn load(&self) -> Option<(u64, DynamicConfig)> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the config cache");
                return None;
            }
        };
        let parsed = serde_json::from_slice::<Cached>(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                switchyard_config::from_stream_value(c.config)
                    .map(|cfg| (c.version, cfg))
                    .map_err(|e| e.to_string())
            });
        match parsed {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring a corrupt config cache");
                None
            }
        }
    }

    /// Replaces the cache with `version`/`config` (blocking; call from a blocking task).
    pub fn store(&self, version: u64, config: &DynamicConfig) -> Result<(), ProxyError> {
        let err = |e: std::io::Error| ProxyError::Cache(format!("{}: {e}", self.dir.display()));
        let bytes = serde_json::to_vec(&CachedRef { version, config })
            .map_err(|e| ProxyError::Cache(e.to_string()))?;
        let tmp = self.dir.join(format!("{}.tmp", self.file));
        // A leftover temporary file keeps its old mode; start from a new one.
        let _ = fs::remove_file(&tmp);
        let mut open = fs::OpenOptions::new();
        open.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
        let mut f = open.open(&tmp).map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
        fs::rename(&tmp, self.path()).map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = std::env::temp_dir().join(format!("sy-cache-{}", std::process::id()));
        let cache = Cache::open(&dir).expect("open");
        assert!(cache.load().is_none());
        let cfg = switchyard_config::parse_document(
            "http:\n  routers:\n    a: {rule: \"Host(`a`)\", service: s}\n  services:\n    s: {loadBalancer: {servers: [{url: \"http://127.0.0.1:1\"}]}}\n",
        )
        .expect("valid");
        cache.store(42, &cfg).expect("store");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join(FILE))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the cache holds private keys");
        }
        let (v, back) = cache.load().expect("cached");
        assert_eq!(v, 42);
        assert_eq!(back, cfg);
        fs::write(dir.join(FILE), b"{not json").expect("write");
        assert!(cache.load().is_none());
        let _ = fs::remove_dir_all(&dir);
    }
}
