//! The creator's credential, sealed for the store. A batch runs every line
//! as the principal that created it, through the same authentication as
//! any request, so the gateway must keep the credential until the batch
//! ends — including across a restart. It is stored encrypted and
//! authenticated, never in a record an API route returns, never logged.
//!
//! Encrypt-then-MAC with HMAC-SHA256 as the only primitive (the crate has
//! no cipher dependency): the keystream is HMAC(enc_key, nonce ‖ counter)
//! — HMAC as a PRF in counter mode — and the tag is HMAC(mac_key, nonce ‖
//! ciphertext), checked in constant time. Both keys are derived from the
//! store's own secret with distinct labels.

use crate::digest::{ct_eq, hmac_sha256, os_random};

const NONCE: usize = 16;
const TAG: usize = 32;

/// Keys derived from one 32-byte secret.
#[derive(Clone)]
pub struct Sealer {
    enc: [u8; 32],
    mac: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn new(secret: &[u8; 32]) -> Sealer {
        Sealer {
            enc: hmac_sha256(secret, b"tollgate batch credential: encryption"),
            mac: hmac_sha256(secret, b"tollgate batch credential: authentication"),
        }
    }

    /// nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let nonce = os_random::<NONCE>();
        let mut out = Vec::with_capacity(NONCE + plain.len() + TAG);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        self.xor(&nonce, &mut out[NONCE..]);
        let tag = hmac_sha256(&self.mac, &out);
        out.extend_from_slice(&tag);
        out
    }

    /// The plain bytes, or `None` if the blob was altered or sealed with
    /// another secret.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE + TAG {
            return None;
        }
        let (body, tag) = sealed.split_at(sealed.len() - TAG);
        let tag: [u8; 32] = tag.try_into().ok()?;
        if !ct_eq(&hmac_sha256(&self.mac, body), &tag) {
            return None;
        }
        let (nonce, cipher) = body.split_at(NONCE);
        let mut plain = cipher.to_vec();
        self.xor(nonce, &mut plain);
        Some(plain)
    }

    fn xor(&self, nonce: &[u8], data: &mut [u8]) {
        for (i, chunk) in data.chunks_mut(32).enumerate() {
            let mut block = [0u8; NONCE + 8];
            block[..NONCE].copy_from_slice(nonce);
            block[NONCE..].copy_from_slice(&(i as u64).to_be_bytes());
            let pad = hmac_sha256(&self.enc, &block);
            for (b, p) in chunk.iter_mut().zip(pad) {
                *b ^= p;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_credential_opens_only_unaltered_and_with_its_secret() {
        let s = Sealer::new(&[7; 32]);
        let plain = b"Bearer tg-very-secret-key-that-is-longer-than-one-block-of-32-bytes";
        let sealed = s.seal(plain);
        assert!(!sealed.windows(8).any(|w| w == b"tg-very-"), "the secret is not stored in the clear");
        assert_eq!(s.open(&sealed).as_deref(), Some(&plain[..]));
        assert_ne!(s.seal(plain), sealed, "a fresh nonce every time");
        let mut bad = sealed.clone();
        bad[NONCE + 3] ^= 1;
        assert_eq!(s.open(&bad), None, "a flipped bit is caught");
        assert_eq!(Sealer::new(&[8; 32]).open(&sealed), None, "another secret cannot open it");
        assert_eq!(s.open(&sealed[..10]), None);
        assert_eq!(s.open(&s.seal(b"")).as_deref(), Some(&b""[..]));
    }
}
