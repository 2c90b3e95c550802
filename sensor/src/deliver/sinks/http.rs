//! `http`: batches of alerts POSTed to a URL — NDJSON (`application/x-ndjson`, one alert
//! per line) or, with `format: hec`, Splunk HEC event objects concatenated. TLS is rustls
//! (aws-lc-rs) trusting the Mozilla roots of `webpki-roots`, or only the CAs of `ca_file`;
//! redirects are not followed. 2xx acknowledges the batch; 408/425/429/5xx and network
//! errors are retried (honouring `Retry-After`); other statuses are permanent.
//!
//! [`HttpClient`] (a blocking facade over reqwest on a private current-thread runtime) is
//! shared with the webhook sink and the revocation providers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{Item, OutputConfig, SendError, Sink, SinkError};
use crate::deliver::formats::Format;

/// The trust roots: the CAs in `ca_file`, or the built-in web roots.
pub fn load_roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(p) => {
            use rustls::pki_types::pem::PemObject;
            let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: {e}", p.display()))?;
            if certs.is_empty() {
                return Err(format!("{}: no PEM certificate in it", p.display()));
            }
            for c in certs {
                roots.add(c).map_err(|e| format!("{}: {e}", p.display()))?;
            }
        }
    }
    Ok(roots)
}

/// A response, read whole.
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// Blocking HTTP(S) client for one worker thread.
pub struct HttpClient {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

/// An error with its causes ("error sending request: … : Connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

impl HttpClient {
    /// A client trusting `ca_file` (or the web roots), with a per-request `timeout`.
    pub fn new(ca_file: Option<&Path>, timeout: Duration) -> Result<HttpClient, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(load_roots(ca_file)?)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = {
            let _g = rt.enter();
            reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(timeout)
                .connect_timeout(Duration::from_secs(5).min(timeout))
                .user_agent(concat!("token-sensor/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| error_chain(&e))?
        };
        Ok(HttpClient { rt, client })
    }

    /// The underlying client (to build requests).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends a request and reads the response (network errors as text).
    pub fn send(&self, req: reqwest::RequestBuilder) -> Result<Response, String> {
        self.rt.block_on(async move {
            let r = req.send().await.map_err(|e| error_chain(&e))?;
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            Ok(Response {
                status,
                headers,
                body,
            })
        })
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Whether a status is worth retrying.
pub fn is_transient(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || status >= 500
}

/// Maps a response to the sink result.
pub fn classify(r: &Response, what: &str) -> Result<(), SendError> {
    if (200..300).contains(&r.status) {
        return Ok(());
    }
    let body: String = String::from_utf8_lossy(&r.body).chars().take(200).collect();
    let error = format!("{what}: HTTP {} {}", r.status, body.trim())
        .trim_end()
        .to_string();
    if is_transient(r.status) {
        Err(SendError::Transient {
            error,
            retry_after: retry_after(&r.headers),
        })
    } else {
        Err(SendError::Permanent { error })
    }
}

/// HTTP output settings.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub url: reqwest::Url,
    /// Headers with `${VAR}` expanded.
    pub headers: Vec<(String, String)>,
    pub ca_file: Option<std::path::PathBuf>,
    pub batch_max: usize,
    pub timeout: Duration,
    pub format: Format,
}

impl HttpConfig {
    /// From a validated `outputs` entry (`at` names it in errors).
    pub fn from_output(c: &OutputConfig, at: &str) -> Result<HttpConfig, SinkError> {
        Ok(HttpConfig {
            url: super::check_url(c.url.as_deref().unwrap_or("")).map_err(|problem| {
                SinkError::Invalid {
                    at: at.into(),
                    problem,
                }
            })?,
            headers: super::expand_headers(&c.headers, at)?,
            ca_file: c.ca_file.clone(),
            batch_max: c.batch_max.unwrap_or(100),
            timeout: Duration::from_secs(c.timeout_secs.unwrap_or(10)),
            format: c.format(),
        })
    }
}

/// Builds a header map (values marked sensitive so they never show in debug output).
pub fn header_map(headers: &[(String, String)]) -> Result<reqwest::header::HeaderMap, String> {
    let mut m = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("header `{k}`: invalid name"))?;
        let mut value = reqwest::header::HeaderValue::from_str(v)
            .map_err(|_| format!("header `{k}`: invalid value"))?;
        value.set_sensitive(true);
        m.insert(name, value);
    }
    Ok(m)
}

/// A batching HTTP output.
pub struct HttpSink {
    cfg: HttpConfig,
    headers: reqwest::header::HeaderMap,
    http: HttpClient,
}

impl HttpSink {
    /// A sink for `cfg`.
    pub fn new(cfg: HttpConfig) -> Result<HttpSink, String> {
        Ok(HttpSink {
            headers: header_map(&cfg.headers)?,
            http: HttpClient::new(cfg.ca_file.as_deref(), cfg.timeout)?,
            cfg,
        })
    }
}

impl Sink for HttpSink {
    fn batch_max(&self) -> usize {
        self.cfg.batch_max
    }

    fn send(&mut self, items: &[Item]) -> Result<(), SendError> {
        let mut body = Vec::new();
        for it in items {
            body.extend_from_slice(&it.line);
            body.push(b'\n');
        }
        let ctype = match self.cfg.format {
            Format::Hec => "application/json",
            Format::Cef => "text/plain",
            _ => "application/x-ndjson",
        };
        let req = self
            .http
            .client()
            .post(self.cfg.url.clone())
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, ctype)
            .body(body);
        let r = self
            .http
            .send(req)
            .map_err(|e| SendError::transient(format!("POST {}: {e}", self.cfg.url)))?;
        classify(&r, &format!("POST {}", self.cfg.url))
    }
}
