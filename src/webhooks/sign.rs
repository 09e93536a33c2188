//! Standard Webhooks signatures (standardwebhooks.com): secrets are `whsec_` + base64 of the key;
//! a delivery carries `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`,
//! `v1,` + base64 of HMAC-SHA256(key, "id.timestamp.body"), one per secret, space-separated (two
//! during a rotation). [`verify`] is the receiver's check, with the tolerance against replays.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// How far a timestamp may be from the receiver's clock.
pub const TOLERANCE_S: i64 = 5 * 60;

/// The key of a `whsec_…` secret, or why it is not one.
pub fn key_of(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").ok_or("a secret is whsec_ followed by base64")?;
    let key = B64.decode(b64).map_err(|e| format!("the secret's base64: {e}"))?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!("a secret's key is 24 to 64 bytes, this one has {}", key.len()));
    }
    Ok(key)
}

/// A new random secret (32 bytes).
pub fn new_secret() -> String {
    let key: [u8; 32] = rand::random();
    format!("whsec_{}", B64.encode(key))
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    B64.encode(m.finalize().into_bytes())
}

/// The `webhook-signature` header: one `v1,…` per key.
pub fn signature(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter().map(|k| format!("v1,{}", mac(k, id, timestamp, body))).collect::<Vec<_>>().join(" ")
}

/// The receiver's check: the timestamp within [`TOLERANCE_S`] of `now` and one of the
/// signatures made with `secret`.
pub fn verify(secret: &str, id: &str, timestamp: &str, signatures: &str, body: &[u8], now: i64) -> Result<(), String> {
    let key = key_of(secret)?;
    let ts: i64 = timestamp.parse().map_err(|_| "webhook-timestamp is not a number")?;
    if (now - ts).abs() > TOLERANCE_S {
        return Err("webhook-timestamp is too far from now".into());
    }
    let expected = mac(&key, id, ts, body);
    let ok = signatures.split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|s| {
        // Constant time: compare the MACs of both.
        let a = Sha256Digest::of(s.as_bytes());
        let b = Sha256Digest::of(expected.as_bytes());
        a == b
    });
    if ok { Ok(()) } else { Err("no signature matches".into()) }
}

struct Sha256Digest;
impl Sha256Digest {
    fn of(b: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        Sha256::digest(b).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (and its reference libraries' tests).
    #[test]
    fn matches_the_specification_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let key = key_of(secret).unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = signature(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", &sig, body, 1614265330 + 10).is_ok());
        assert!(verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", &sig, body, 1614265330 + 400).is_err(), "too old");
        assert!(verify(secret, "msg_other", "1614265330", &sig, body, 1614265330).is_err());
    }

    #[test]
    fn rotation_signs_with_both_and_bad_secrets_are_refused() {
        let (a, b) = (new_secret(), new_secret());
        let sig = signature(&[key_of(&a).unwrap(), key_of(&b).unwrap()], "id", 10, b"x");
        assert!(verify(&a, "id", "10", &sig, b"x", 10).is_ok());
        assert!(verify(&b, "id", "10", &sig, b"x", 10).is_ok());
        assert!(key_of("nope").is_err());
        assert!(key_of("whsec_!!!").is_err());
        assert!(key_of("whsec_c2hvcnQ=").is_err(), "too short");
    }
}
