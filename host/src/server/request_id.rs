//! Request ids: a client's own id when it sent a usable one (so a trace crosses the
//! host), else a generated one — RFC 4122 UUID-shaped, unique within a process and
//! unlikely to repeat across processes, cheap enough to make for every request.
//!
//! The ABI promises plugins an id unique among the requests in flight (`cancel` names a
//! request by it), so a client's id is kept only while no other request in flight has it,
//! and never when it could be one the host generates: otherwise one client could make the
//! host cancel another client's request.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;

/// The longest client-sent id kept; a longer one is replaced by a generated id.
pub const MAX_LEN: usize = 128;

/// Hands out ids: a random per-process 122-bit prefix with a counter in its low 48 bits,
/// written as a version-4 UUID (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`). No syscall per id.
pub struct RequestIds {
    /// The counter: the low 48 bits of each id.
    next: AtomicU64,
    /// The first 24 characters every generated id shares (`8-4-4-4-`): the random 80 bits
    /// above the counter.
    prefix: String,
    /// Client-sent ids of the requests in flight.
    client_ids: Mutex<HashSet<Box<str>>>,
}

/// One request's id; a client-sent one is released for reuse when this is dropped.
pub struct RequestId<'a> {
    id: String,
    /// Set when `id` came from the client and is registered as in flight.
    registry: Option<&'a Mutex<HashSet<Box<str>>>>,
}

impl Deref for RequestId<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.id
    }
}

impl RequestId<'_> {
    /// The id as an owned string, for a request that outlives its handler (a streamed
    /// response): when it is a client's id still registered as in flight, the second value
    /// says so, and [`RequestIds::release`] must be called when the request ends.
    pub fn detach(mut self) -> (String, bool) {
        let registered = self.registry.take().is_some();
        (std::mem::take(&mut self.id), registered)
    }
}

impl Drop for RequestId<'_> {
    fn drop(&mut self) {
        if let Some(registry) = self.registry {
            lock(registry).remove(self.id.as_str());
        }
    }
}

/// The set, also after a panic elsewhere poisoned its lock (it holds plain strings).
fn lock(registry: &Mutex<HashSet<Box<str>>>) -> std::sync::MutexGuard<'_, HashSet<Box<str>>> {
    registry
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RequestIds {
    /// A generator seeded from the OS's randomness (through `RandomState`), the clock and
    /// the process id.
    pub fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let random = |salt: u64| {
            let mut h = RandomState::new().build_hasher();
            h.write_u64(salt ^ nanos);
            h.write_u32(std::process::id());
            h.finish()
        };
        let (high, low) = (random(1), random(2));
        // Version 4: bits 12..16 of the third group.
        let high = (high & !0xF000) | 0x4000;
        // Variant 10xx in the top bits of the fourth group.
        let fixed_low = (low & 0x3FFF_0000_0000_0000) | 0x8000_0000_0000_0000;
        RequestIds {
            next: AtomicU64::new(low & 0xFFFF_FFFF_FFFF),
            prefix: format_uuid(high, fixed_low)[..24].to_owned(),
            client_ids: Mutex::new(HashSet::new()),
        }
    }

    /// Releases a client's id kept by [`RequestId::detach`]: it may be used again.
    pub fn release(&self, id: &str) {
        lock(&self.client_ids).remove(id);
    }

    /// The next generated id: the process's prefix and the counter's 12 hex digits (one
    /// copy and twelve table lookups; this runs for every request).
    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed) & 0xFFFF_FFFF_FFFF;
        let mut id = Vec::with_capacity(36);
        id.extend_from_slice(self.prefix.as_bytes());
        id.extend(
            (0..12)
                .rev()
                .map(|digit| HEX[((n >> (digit * 4)) & 0xF) as usize]),
        );
        // The prefix is hex and dashes, the rest hex digits: always UTF-8.
        String::from_utf8(id).unwrap_or_default()
    }

    /// The id of a request: `incoming` (the configured request-id header) when it is
    /// usable (see [`usable`]), not shaped like this generator's ids and not the id of
    /// another request in flight; else a generated one.
    pub fn for_request(&self, incoming: Option<&HeaderValue>) -> RequestId<'_> {
        if let Some(id) = incoming.and_then(usable) {
            if !id.starts_with(self.prefix.as_str()) && lock(&self.client_ids).insert(id.into()) {
                return RequestId {
                    id: id.to_owned(),
                    registry: Some(&self.client_ids),
                };
            }
        }
        RequestId {
            id: self.next(),
            registry: None,
        }
    }
}

/// A client-sent id the host keeps: 1 to [`MAX_LEN`] visible ASCII characters, no spaces
/// or control bytes (so it is safe in a log line and a response header).
pub fn usable(value: &HeaderValue) -> Option<&str> {
    let bytes = value.as_bytes();
    let fits =
        (1..=MAX_LEN).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7E).contains(b));
    if fits {
        value.to_str().ok()
    } else {
        None
    }
}

/// Lower-case hex digits by value.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// 128 bits as `8-4-4-4-12` lower-case hex.
fn format_uuid(high: u64, low: u64) -> String {
    let bits = (u128::from(high) << 64) | u128::from(low);
    let mut out = [0u8; 36];
    let mut nibble = 32;
    for (i, slot) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            *slot = b'-';
            continue;
        }
        nibble -= 1;
        *slot = HEX[((bits >> (nibble * 4)) & 0xF) as usize];
    }
    // Hex digits and dashes only: always UTF-8.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_uuid_v4(id: &str) -> bool {
        let groups: Vec<&str> = id.split('-').collect();
        groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
            && groups[2].starts_with('4')
            && groups[3].starts_with(['8', '9', 'a', 'b'])
    }

    #[test]
    fn generated_ids_are_distinct_v4_uuids() {
        let ids = RequestIds::new();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert!(is_uuid_v4(&a) && is_uuid_v4(&b), "{a} {b}");
        let other = RequestIds::new();
        assert_ne!(
            other.next()[..18],
            a[..18],
            "processes get their own prefix"
        );
    }

    #[test]
    fn ids_count_up_in_their_last_twelve_hex_digits() {
        let ids = RequestIds::new();
        ids.next.store(0x0123_4567_89AB, Ordering::Relaxed);
        let (a, b) = (ids.next(), ids.next());
        assert_eq!(&a[24..], "0123456789ab");
        assert_eq!(&b[24..], "0123456789ac");
        assert_eq!(a[..24], b[..24], "one prefix per process");
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn the_counter_wraps_inside_its_field() {
        let ids = RequestIds::new();
        ids.next.store(0xFFFF_FFFF_FFFF, Ordering::Relaxed);
        let (last, first) = (ids.next(), ids.next());
        assert!(last.ends_with("ffffffffffff") && first.ends_with("000000000000"));
        assert!(is_uuid_v4(&last) && is_uuid_v4(&first), "{last} {first}");
    }

    #[test]
    fn client_ids_are_kept_only_when_usable() {
        let ids = RequestIds::new();
        let keep = HeaderValue::from_static("trace-123");
        assert_eq!(&*ids.for_request(Some(&keep)), "trace-123");
        let longest = "a".repeat(MAX_LEN);
        let value = HeaderValue::from_str(&longest).unwrap();
        assert_eq!(&*ids.for_request(Some(&value)), longest);
        for bad in ["", "has space", "tab\there", &"a".repeat(MAX_LEN + 1)] {
            let value = HeaderValue::from_str(bad).unwrap();
            assert!(usable(&value).is_none(), "{bad:?}");
            assert!(is_uuid_v4(&ids.for_request(Some(&value))));
        }
        let bytes = HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
        assert!(usable(&bytes).is_none());
        assert!(is_uuid_v4(&ids.for_request(None)));
    }

    #[test]
    fn a_client_id_is_unique_among_requests_in_flight() {
        let ids = RequestIds::new();
        let value = HeaderValue::from_static("same");
        let first = ids.for_request(Some(&value));
        let second = ids.for_request(Some(&value));
        assert_eq!(&*first, "same");
        assert!(is_uuid_v4(&second), "a duplicate in flight gets a fresh id");
        drop(first);
        assert_eq!(&*ids.for_request(Some(&value)), "same", "free again");
    }

    #[test]
    fn a_client_id_cannot_take_a_generated_ones_place() {
        let ids = RequestIds::new();
        let generated = ids.next();
        let next = format!(
            "{}{:012x}",
            &generated[..24],
            u64::from_str_radix(&generated[24..], 16).unwrap() + 1
        );
        let value = HeaderValue::from_str(&next).unwrap();
        let got = ids.for_request(Some(&value));
        assert!(
            got.registry.is_none(),
            "generated by the host, not taken from the client"
        );
        assert!(is_uuid_v4(&got));
    }
}
