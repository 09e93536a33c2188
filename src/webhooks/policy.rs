//! Where webhooks may go: `http` or `https` only, and, unless the config allows it
//! (`api.webhook_allow_private`), not to loopback, private, link-local or unspecified
//! addresses (a guard against making Postern reach into its own network for whoever can
//! create an endpoint). Checked when an endpoint is made and again before each round of sends
//! to it, on the addresses the name resolves to then. (A name that resolves differently between
//! that check and the connection is not caught.)

use std::net::IpAddr;

#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    pub allow_private: bool,
}

fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_loopback() || a.is_private() || a.is_link_local() || a.is_unspecified() || a.is_broadcast() || a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64,
        IpAddr::V6(a) => {
            a.is_loopback() || a.is_unspecified() || (a.segments()[0] & 0xfe00) == 0xfc00 || (a.segments()[0] & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped().is_some_and(|v4| private(IpAddr::V4(v4)))
        }
    }
}

impl UrlPolicy {
    /// The URL's shape, and its host when it is an address or `localhost`.
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err("only http:// and https:// URLs".into()),
        }
        let host = uri.host().ok_or("the URL has no host")?;
        if url.len() > 2048 {
            return Err("the URL is longer than 2048 bytes".into());
        }
        if self.allow_private {
            return Ok(());
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.eq_ignore_ascii_case("localhost") || bare.to_ascii_lowercase().ends_with(".localhost") {
            return Err("loopback targets are refused (api.webhook_allow_private)".into());
        }
        if let Ok(ip) = bare.parse::<IpAddr>() {
            if private(ip) {
                return Err(format!("{ip} is a private or loopback address (api.webhook_allow_private)"));
            }
        }
        Ok(())
    }

    /// Before connecting: every address the host resolves to now must be allowed.
    pub async fn check_connect(&self, url: &str) -> Result<(), String> {
        self.check_url(url)?;
        if self.allow_private {
            return Ok(());
        }
        let uri: hyper::Uri = url.parse().map_err(|e| format!("{e}"))?;
        let host = uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let addrs = tokio::net::lookup_host((host.as_str(), port)).await.map_err(|e| format!("{host}: {e}"))?;
        for a in addrs {
            if private(a.ip()) {
                return Err(format!("{host} resolves to {}, a private or loopback address", a.ip()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_private_targets() {
        let strict = UrlPolicy::default();
        assert!(strict.check_url("https://hooks.example.org/p").is_ok());
        for bad in ["ftp://x.example/", "http://127.0.0.1/x", "http://localhost:8080/", "http://10.1.2.3/", "http://[::1]/", "http://169.254.169.254/latest", "http://192.168.1.1/", "http://100.64.0.1/", "not a url", "http:///nohost"] {
            assert!(strict.check_url(bad).is_err(), "{bad}");
        }
        let open = UrlPolicy { allow_private: true };
        assert!(open.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(open.check_url("ftp://127.0.0.1/").is_err());
    }
}
