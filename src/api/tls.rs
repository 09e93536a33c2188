//! HTTPS on the API listener: rustls from `[api.tls]`'s PEM files, optionally requiring client
//! certificates from a CA. The files are read again on SIGHUP (a renewed certificate is
//! served to new connections; if the new files do not load, the old ones stay and the error
//! is logged).

use crate::config::ApiTlsFiles;
use crate::connector::tls::{server_config_for_clients, TlsError};
use parking_lot::RwLock;
use std::sync::Arc;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// The API's TLS settings, reloadable.
pub struct ApiTls {
    files: ApiTlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl ApiTls {
    pub fn load(files: &ApiTlsFiles) -> Result<ApiTls, TlsError> {
        let cfg = Self::read(files)?;
        Ok(ApiTls { files: files.clone(), current: RwLock::new(cfg) })
    }

    fn read(f: &ApiTlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
        let cfg = server_config_for_clients(&f.cert, &f.key, f.client_ca.as_deref())?;
        let mut cfg = Arc::unwrap_or_clone(cfg);
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// Read the files again; the old settings stay if they do not load.
    pub fn reload(&self) -> Result<(), TlsError> {
        let cfg = Self::read(&self.files)?;
        *self.current.write() = cfg;
        Ok(())
    }

    /// An acceptor with the current settings.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }
}

/// Reload on every SIGHUP while the API runs.
pub async fn reload_on_hangup(tls: Arc<ApiTls>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: the API's certificate will not be reloaded");
        return;
    };
    while hup.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("API certificate reloaded"),
            Err(e) => tracing::error!(error = %e, "API certificate not reloaded; the old one stays"),
        }
    }
}
