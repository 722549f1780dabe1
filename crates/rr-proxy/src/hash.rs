//! Stable 64-bit hashing: the same bytes give the same number in every process,
//! on every machine and in every version of this crate, so that a sticky cookie
//! or a place on the hash ring survives a restart and agrees between several
//! proxies in front of the same backends. Not for untrusted keys in hash
//! tables (no secret seed): the ring and the cookies only need a good spread.

/// FNV-1a over `bytes`, then [`mix`] for an even spread of every bit.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// MurmurHash3's 64-bit finalizer: every input bit flips each output bit with
/// a probability close to one half.
pub(crate) fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The `i`-th of a series of numbers derived from `key` (points on the ring).
pub(crate) fn derive(key: u64, i: u64) -> u64 {
    mix(key ^ mix(i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_fixed_forever() {
        // Cookies already handed out name backends by these numbers: a change
        // here would move every client.
        assert_eq!(stable_hash(b""), mix(0xcbf2_9ce4_8422_2325));
        assert_eq!(stable_hash(b"127.0.0.1:9002"), 0x49df_3ecf_8f44_ce80);
    }

    #[test]
    fn close_inputs_spread() {
        let a = stable_hash(b"127.0.0.1:9002");
        let b = stable_hash(b"127.0.0.1:9003");
        assert!((a ^ b).count_ones() > 16, "{a:x} {b:x}");
        assert_ne!(derive(a, 0), derive(a, 1));
    }
}
