//! Remembered successful password checks, keyed by an HMAC (per-process random key) of
//! the file generation, the user and the password; bounded in size and age.

use ring::hmac;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a successful check is remembered.
pub const TTL: Duration = Duration::from_secs(300);
/// Successful checks remembered at most.
pub const CAPACITY: usize = 1024;

pub(super) type Key = [u8; 32];

pub(super) struct VerifyCache {
    hmac: hmac::Key,
    entries: Mutex<HashMap<Key, Instant>>,
}

impl VerifyCache {
    pub(super) fn new() -> VerifyCache {
        let rng = ring::rand::SystemRandom::new();
        let hmac = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| panic!("the system random number generator failed"));
        VerifyCache {
            hmac,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn key(&self, generation: u64, user: &str, password: &str) -> Key {
        let mut ctx = hmac::Context::with_key(&self.hmac);
        ctx.update(&generation.to_le_bytes());
        ctx.update(&(user.len() as u64).to_le_bytes());
        ctx.update(user.as_bytes());
        ctx.update(password.as_bytes());
        let mut k = [0u8; 32];
        k.copy_from_slice(ctx.sign().as_ref());
        k
    }

    pub(super) fn hit(&self, key: &Key) -> bool {
        self.hit_at(key, Instant::now())
    }

    fn hit_at(&self, key: &Key, now: Instant) -> bool {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(at) if now.saturating_duration_since(*at) < TTL => true,
            Some(_) => {
                entries.remove(key);
                false
            }
            None => false,
        }
    }

    pub(super) fn insert(&self, key: Key) {
        self.insert_at(key, Instant::now());
    }

    fn insert_at(&self, key: Key, now: Instant) {
        let mut entries = self.lock();
        if entries.len() >= CAPACITY && !entries.contains_key(&key) {
            entries.retain(|_, at| now.saturating_duration_since(*at) < TTL);
            if entries.len() >= CAPACITY {
                let oldest = entries.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key, now);
    }

    pub(super) fn clear(&self) {
        self.lock().clear();
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Instant>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_input_and_the_process_key() {
        let c = VerifyCache::new();
        let k = c.key(0, "carol", "pw");
        assert_eq!(k, c.key(0, "carol", "pw"));
        assert_ne!(k, c.key(1, "carol", "pw"));
        assert_ne!(k, c.key(0, "carol", "pw2"));
        assert_ne!(k, c.key(0, "caro", "lpw"));
        assert_ne!(k, VerifyCache::new().key(0, "carol", "pw"));
    }

    #[test]
    fn entries_expire_and_stay_bounded() {
        let c = VerifyCache::new();
        let t0 = Instant::now();
        let k = c.key(0, "u", "p");
        c.insert_at(k, t0);
        assert!(c.hit_at(&k, t0 + TTL - Duration::from_secs(1)));
        assert!(!c.hit_at(&k, t0 + TTL));
        assert_eq!(c.len(), 0);
        for i in 0..CAPACITY + 10 {
            c.insert_at(
                c.key(0, "u", &i.to_string()),
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(c.len(), CAPACITY);
        // The oldest went first.
        assert!(!c.hit_at(&c.key(0, "u", "0"), t0));
        assert!(c.hit_at(&c.key(0, "u", &(CAPACITY + 9).to_string()), t0));
        c.clear();
        assert_eq!(c.len(), 0);
    }
}
