//! Email through SMTP (lettre): the relay's `smtp://host:port` address, and
//! sending one plain-text UTF-8 message to a job's submitter.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// Where and as whom email is sent.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// The relay's host name or address.
    pub host: String,
    /// The relay's port.
    pub port: u16,
    /// The `From:` of every message.
    pub from: Mailbox,
}

impl SmtpConfig {
    /// Reads `--smtp-url` (`smtp://host[:port]`, port 25 by default) and `--smtp-from`.
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        let (host, port) = parse_url(url)?;
        let from = from
            .parse()
            .map_err(|e| format!("{from:?} is not an email address: {e}"))?;
        Ok(SmtpConfig { host, port, from })
    }
}

/// Splits `smtp://host[:port]` into host and port. Only plain SMTP (a local
/// relay or sink) is supported: no TLS, no authentication.
pub fn parse_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("smtp://")
        .ok_or_else(|| format!("{url:?} must look like smtp://host:port"))?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains(['/', '@', '?']) {
        return Err(format!("{url:?} must look like smtp://host:port"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{port:?} in {url:?} is not a port"))?;
            (host, port)
        }
        _ => (rest, 25),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok((host.to_string(), port))
}

/// Sends one plain-text message; the error says why it was not accepted.
pub async fn send(config: &SmtpConfig, to: &str, subject: &str, body: &str) -> Result<(), String> {
    let to: Mailbox = to
        .parse()
        .map_err(|e| format!("{to:?} is not an email address: {e}"))?;
    let message = Message::builder()
        .from(config.from.clone())
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_string())
        .map_err(|e| format!("building the message: {e}"))?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
        .port(config.port)
        .timeout(Some(Duration::from_secs(20)))
        .build();
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP {}:{}: {e}", config.host, config.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        assert_eq!(
            parse_url("smtp://127.0.0.1:2525"),
            Ok(("127.0.0.1".into(), 2525))
        );
        assert_eq!(
            parse_url("smtp://mail.example.com"),
            Ok(("mail.example.com".into(), 25))
        );
        assert_eq!(parse_url("smtp://[::1]:2525/"), Ok(("::1".into(), 2525)));
        for bad in [
            "",
            "127.0.0.1:25",
            "smtps://mail.example.com",
            "smtp://",
            "smtp://host:0",
            "smtp://host:port",
            "smtp://user@host:25",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_checks_the_sender() {
        assert!(SmtpConfig::new("smtp://localhost:25", "wasmq <wasmq@example.com>").is_ok());
        assert!(SmtpConfig::new("smtp://localhost:25", "not an address").is_err());
    }
}
