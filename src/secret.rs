//! Hashed secrets for config files (API keys, sendsms and SMPP passwords): PBKDF2-HMAC-SHA256
//! with a random salt, written `pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX`. Verified results are
//! cached in memory by a SHA-256 of the candidate so a hot API path pays the cost once.

use hmac::Hmac;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use thiserror::Error;

const SCHEME: &str = "pbkdf2-sha256";
/// Iterations for new hashes. Each verification miss costs about this many HMACs.
pub const ITERATIONS: u32 = 60_000;

/// A config value that is not a hash this module understands.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("must be a hash from `postern hash-password` (pbkdf2-sha256$ITER$SALT$HASH): {0}")]
pub struct BadHash(&'static str);

/// A parsed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: [u8; 32],
}

/// Parse the stored form.
pub fn parse_hash(s: &str) -> Result<SecretHash, BadHash> {
    let mut it = s.split('$');
    if it.next() != Some(SCHEME) {
        return Err(BadHash("unknown scheme"));
    }
    let iterations: u32 = it
        .next()
        .and_then(|x| x.parse().ok())
        .ok_or(BadHash("bad iteration count"))?;
    if !(1000..=10_000_000).contains(&iterations) {
        return Err(BadHash("iterations must be 1000..=10000000"));
    }
    let salt = it
        .next()
        .and_then(|x| hex::decode(x).ok())
        .ok_or(BadHash("bad salt"))?;
    if salt.len() < 8 {
        return Err(BadHash("salt shorter than 8 octets"));
    }
    let hash: [u8; 32] = it
        .next()
        .and_then(|x| hex::decode(x).ok())
        .and_then(|v| v.try_into().ok())
        .ok_or(BadHash("bad hash"))?;
    if it.next().is_some() {
        return Err(BadHash("trailing fields"));
    }
    Ok(SecretHash {
        iterations,
        salt,
        hash,
    })
}

fn derive(secret: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    // Output length 32 is always valid for HMAC-SHA256, so this cannot fail.
    let _ = pbkdf2::pbkdf2::<Hmac<Sha256>>(secret, salt, iterations, &mut out);
    out
}

/// Hash a new secret with a random salt.
pub fn hash_secret(secret: &str) -> String {
    let salt: [u8; 16] = rand::random();
    let h = derive(secret.as_bytes(), &salt, ITERATIONS);
    format!(
        "{SCHEME}${ITERATIONS}${}${}",
        hex::encode(salt),
        hex::encode(h)
    )
}

impl SecretHash {
    /// Constant-time comparison of the derived key.
    pub fn verify(&self, candidate: &str) -> bool {
        let d = derive(candidate.as_bytes(), &self.salt, self.iterations);
        d.iter()
            .zip(self.hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// A set of accepted secrets with a cache of candidates already checked.
#[derive(Debug, Default)]
pub struct Verifier {
    hashes: Vec<SecretHash>,
    /// SHA-256 of a candidate → the hash it matched.
    cache: Mutex<HashMap<[u8; 32], Option<usize>>>,
}

impl Verifier {
    pub fn new(hashes: Vec<SecretHash>) -> Self {
        Verifier {
            hashes,
            cache: Mutex::new(HashMap::new()),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
    /// True when `candidate` matches any hash.
    pub fn check(&self, candidate: &str) -> bool {
        self.find(candidate).is_some()
    }
    /// Which hash `candidate` matches (its position in the list), if any.
    pub fn find(&self, candidate: &str) -> Option<usize> {
        let key: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        if let Some(&found) = self.cache.lock().get(&key) {
            return found;
        }
        let found = self.hashes.iter().position(|h| h.verify(candidate));
        let mut cache = self.cache.lock();
        if cache.len() > 10_000 {
            cache.clear(); // bounded: a flood of wrong guesses cannot grow memory
        }
        cache.insert(key, found);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_secret("s3cret");
        let p = parse_hash(&h).unwrap();
        assert!(p.verify("s3cret"));
        assert!(!p.verify("s3cret "));
        let v = Verifier::new(vec![p]);
        assert!(v.check("s3cret"));
        assert!(!v.check("nope"));
        assert!(v.check("s3cret"));
    }

    #[test]
    fn bad_hashes() {
        assert!(parse_hash("sha256:abc").is_err());
        assert!(parse_hash("pbkdf2-sha256$10$00112233445566778899$00").is_err());
        assert!(parse_hash("pbkdf2-sha256$60000$0011$00").is_err());
    }
}
