//! The Huffman code of RFC 7541 §5.2 (Appendix B).
//!
//! Decoding runs a state machine over the 256 internal nodes of the code
//! tree, four bits at a time: each (node, nibble) pair says the node reached,
//! and the symbol completed on the way if any (the shortest code has 5 bits,
//! so at most one). The table (16 KiB) is computed at compile time from
//! [`CODES`], which a `const` assertion checks to be a complete prefix code.

use super::DecodeError;

/// The Huffman code of RFC 7541 Appendix B: `(code, bit length)` of symbols
/// 0..=255 and EOS (256), the code right-aligned in the `u32`.
pub(super) const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13),     // 0
    (0x7fffd8, 23),   // 1
    (0xfffffe2, 28),  // 2
    (0xfffffe3, 28),  // 3
    (0xfffffe4, 28),  // 4
    (0xfffffe5, 28),  // 5
    (0xfffffe6, 28),  // 6
    (0xfffffe7, 28),  // 7
    (0xfffffe8, 28),  // 8
    (0xffffea, 24),   // 9
    (0x3ffffffc, 30), // 10
    (0xfffffe9, 28),  // 11
    (0xfffffea, 28),  // 12
    (0x3ffffffd, 30), // 13
    (0xfffffeb, 28),  // 14
    (0xfffffec, 28),  // 15
    (0xfffffed, 28),  // 16
    (0xfffffee, 28),  // 17
    (0xfffffef, 28),  // 18
    (0xffffff0, 28),  // 19
    (0xffffff1, 28),  // 20
    (0xffffff2, 28),  // 21
    (0x3ffffffe, 30), // 22
    (0xffffff3, 28),  // 23
    (0xffffff4, 28),  // 24
    (0xffffff5, 28),  // 25
    (0xffffff6, 28),  // 26
    (0xffffff7, 28),  // 27
    (0xffffff8, 28),  // 28
    (0xffffff9, 28),  // 29
    (0xffffffa, 28),  // 30
    (0xffffffb, 28),  // 31
    (0x14, 6),        // 32
    (0x3f8, 10),      // 33
    (0x3f9, 10),      // 34
    (0xffa, 12),      // 35
    (0x1ff9, 13),     // 36
    (0x15, 6),        // 37
    (0xf8, 8),        // 38
    (0x7fa, 11),      // 39
    (0x3fa, 10),      // 40
    (0x3fb, 10),      // 41
    (0xf9, 8),        // 42
    (0x7fb, 11),      // 43
    (0xfa, 8),        // 44
    (0x16, 6),        // 45
    (0x17, 6),        // 46
    (0x18, 6),        // 47
    (0x0, 5),         // 48
    (0x1, 5),         // 49
    (0x2, 5),         // 50
    (0x19, 6),        // 51
    (0x1a, 6),        // 52
    (0x1b, 6),        // 53
    (0x1c, 6),        // 54
    (0x1d, 6),        // 55
    (0x1e, 6),        // 56
    (0x1f, 6),        // 57
    (0x5c, 7),        // 58
    (0xfb, 8),        // 59
    (0x7ffc, 15),     // 60
    (0x20, 6),        // 61
    (0xffb, 12),      // 62
    (0x3fc, 10),      // 63
    (0x1ffa, 13),     // 64
    (0x21, 6),        // 65
    (0x5d, 7),        // 66
    (0x5e, 7),        // 67
    (0x5f, 7),        // 68
    (0x60, 7),        // 69
    (0x61, 7),        // 70
    (0x62, 7),        // 71
    (0x63, 7),        // 72
    (0x64, 7),        // 73
    (0x65, 7),        // 74
    (0x66, 7),        // 75
    (0x67, 7),        // 76
    (0x68, 7),        // 77
    (0x69, 7),        // 78
    (0x6a, 7),        // 79
    (0x6b, 7),        // 80
    (0x6c, 7),        // 81
    (0x6d, 7),        // 82
    (0x6e, 7),        // 83
    (0x6f, 7),        // 84
    (0x70, 7),        // 85
    (0x71, 7),        // 86
    (0x72, 7),        // 87
    (0xfc, 8),        // 88
    (0x73, 7),        // 89
    (0xfd, 8),        // 90
    (0x1ffb, 13),     // 91
    (0x7fff0, 19),    // 92
    (0x1ffc, 13),     // 93
    (0x3ffc, 14),     // 94
    (0x22, 6),        // 95
    (0x7ffd, 15),     // 96
    (0x3, 5),         // 97
    (0x23, 6),        // 98
    (0x4, 5),         // 99
    (0x24, 6),        // 100
    (0x5, 5),         // 101
    (0x25, 6),        // 102
    (0x26, 6),        // 103
    (0x27, 6),        // 104
    (0x6, 5),         // 105
    (0x74, 7),        // 106
    (0x75, 7),        // 107
    (0x28, 6),        // 108
    (0x29, 6),        // 109
    (0x2a, 6),        // 110
    (0x7, 5),         // 111
    (0x2b, 6),        // 112
    (0x76, 7),        // 113
    (0x2c, 6),        // 114
    (0x8, 5),         // 115
    (0x9, 5),         // 116
    (0x2d, 6),        // 117
    (0x77, 7),        // 118
    (0x78, 7),        // 119
    (0x79, 7),        // 120
    (0x7a, 7),        // 121
    (0x7b, 7),        // 122
    (0x7ffe, 15),     // 123
    (0x7fc, 11),      // 124
    (0x3ffd, 14),     // 125
    (0x1ffd, 13),     // 126
    (0xffffffc, 28),  // 127
    (0xfffe6, 20),    // 128
    (0x3fffd2, 22),   // 129
    (0xfffe7, 20),    // 130
    (0xfffe8, 20),    // 131
    (0x3fffd3, 22),   // 132
    (0x3fffd4, 22),   // 133
    (0x3fffd5, 22),   // 134
    (0x7fffd9, 23),   // 135
    (0x3fffd6, 22),   // 136
    (0x7fffda, 23),   // 137
    (0x7fffdb, 23),   // 138
    (0x7fffdc, 23),   // 139
    (0x7fffdd, 23),   // 140
    (0x7fffde, 23),   // 141
    (0xffffeb, 24),   // 142
    (0x7fffdf, 23),   // 143
    (0xffffec, 24),   // 144
    (0xffffed, 24),   // 145
    (0x3fffd7, 22),   // 146
    (0x7fffe0, 23),   // 147
    (0xffffee, 24),   // 148
    (0x7fffe1, 23),   // 149
    (0x7fffe2, 23),   // 150
    (0x7fffe3, 23),   // 151
    (0x7fffe4, 23),   // 152
    (0x1fffdc, 21),   // 153
    (0x3fffd8, 22),   // 154
    (0x7fffe5, 23),   // 155
    (0x3fffd9, 22),   // 156
    (0x7fffe6, 23),   // 157
    (0x7fffe7, 23),   // 158
    (0xffffef, 24),   // 159
    (0x3fffda, 22),   // 160
    (0x1fffdd, 21),   // 161
    (0xfffe9, 20),    // 162
    (0x3fffdb, 22),   // 163
    (0x3fffdc, 22),   // 164
    (0x7fffe8, 23),   // 165
    (0x7fffe9, 23),   // 166
    (0x1fffde, 21),   // 167
    (0x7fffea, 23),   // 168
    (0x3fffdd, 22),   // 169
    (0x3fffde, 22),   // 170
    (0xfffff0, 24),   // 171
    (0x1fffdf, 21),   // 172
    (0x3fffdf, 22),   // 173
    (0x7fffeb, 23),   // 174
    (0x7fffec, 23),   // 175
    (0x1fffe0, 21),   // 176
    (0x1fffe1, 21),   // 177
    (0x3fffe0, 22),   // 178
    (0x1fffe2, 21),   // 179
    (0x7fffed, 23),   // 180
    (0x3fffe1, 22),   // 181
    (0x7fffee, 23),   // 182
    (0x7fffef, 23),   // 183
    (0xfffea, 20),    // 184
    (0x3fffe2, 22),   // 185
    (0x3fffe3, 22),   // 186
    (0x3fffe4, 22),   // 187
    (0x7ffff0, 23),   // 188
    (0x3fffe5, 22),   // 189
    (0x3fffe6, 22),   // 190
    (0x7ffff1, 23),   // 191
    (0x3ffffe0, 26),  // 192
    (0x3ffffe1, 26),  // 193
    (0xfffeb, 20),    // 194
    (0x7fff1, 19),    // 195
    (0x3fffe7, 22),   // 196
    (0x7ffff2, 23),   // 197
    (0x3fffe8, 22),   // 198
    (0x1ffffec, 25),  // 199
    (0x3ffffe2, 26),  // 200
    (0x3ffffe3, 26),  // 201
    (0x3ffffe4, 26),  // 202
    (0x7ffffde, 27),  // 203
    (0x7ffffdf, 27),  // 204
    (0x3ffffe5, 26),  // 205
    (0xfffff1, 24),   // 206
    (0x1ffffed, 25),  // 207
    (0x7fff2, 19),    // 208
    (0x1fffe3, 21),   // 209
    (0x3ffffe6, 26),  // 210
    (0x7ffffe0, 27),  // 211
    (0x7ffffe1, 27),  // 212
    (0x3ffffe7, 26),  // 213
    (0x7ffffe2, 27),  // 214
    (0xfffff2, 24),   // 215
    (0x1fffe4, 21),   // 216
    (0x1fffe5, 21),   // 217
    (0x3ffffe8, 26),  // 218
    (0x3ffffe9, 26),  // 219
    (0xffffffd, 28),  // 220
    (0x7ffffe3, 27),  // 221
    (0x7ffffe4, 27),  // 222
    (0x7ffffe5, 27),  // 223
    (0xfffec, 20),    // 224
    (0xfffff3, 24),   // 225
    (0xfffed, 20),    // 226
    (0x1fffe6, 21),   // 227
    (0x3fffe9, 22),   // 228
    (0x1fffe7, 21),   // 229
    (0x1fffe8, 21),   // 230
    (0x7ffff3, 23),   // 231
    (0x3fffea, 22),   // 232
    (0x3fffeb, 22),   // 233
    (0x1ffffee, 25),  // 234
    (0x1ffffef, 25),  // 235
    (0xfffff4, 24),   // 236
    (0xfffff5, 24),   // 237
    (0x3ffffea, 26),  // 238
    (0x7ffff4, 23),   // 239
    (0x3ffffeb, 26),  // 240
    (0x7ffffe6, 27),  // 241
    (0x3ffffec, 26),  // 242
    (0x3ffffed, 26),  // 243
    (0x7ffffe7, 27),  // 244
    (0x7ffffe8, 27),  // 245
    (0x7ffffe9, 27),  // 246
    (0x7ffffea, 27),  // 247
    (0x7ffffeb, 27),  // 248
    (0xffffffe, 28),  // 249
    (0x7ffffec, 27),  // 250
    (0x7ffffed, 27),  // 251
    (0x7ffffee, 27),  // 252
    (0x7ffffef, 27),  // 253
    (0x7fffff0, 27),  // 254
    (0x3ffffee, 26),  // 255
    (0x3fffffff, 30), // 256
];

/// Transition flag: a symbol (bits 8..16) was completed.
const EMIT: u32 = 1 << 16;
/// Transition flag: the EOS code was completed (a decoding error, §5.2).
const FAIL: u32 = 1 << 17;

/// How a string may end in a state (§5.2): a node reached by at most 7 one
/// bits from the root is valid padding.
const END_OK: u8 = 0;
/// Reached by 8 or more one bits: padding longer than 7 bits.
const END_LONG: u8 = 1;
/// Reached by bits that are not all ones: not a prefix of EOS.
const END_NOT_ONES: u8 = 2;

struct Machine {
    /// `[node][nibble]`: next node (bits 0..8) | symbol << 8 | EMIT | FAIL.
    next: [[u32; 16]; 256],
    end: [u8; 256],
}

/// Builds the code tree from [`CODES`] (internal node 0 is the root; a child
/// below 0 is the leaf of symbol `-child - 1`), then the transitions. A code
/// table that is not prefix-free or has other than 256 internal nodes fails to
/// compile.
const fn build() -> Machine {
    let mut children = [[0i32; 2]; 256];
    let mut depth = [0u8; 256];
    let mut ones = [false; 256];
    ones[0] = true;
    let mut nodes = 1usize;
    let mut sym = 0;
    while sym < 257 {
        let (code, len) = CODES[sym];
        let mut node = 0usize;
        let mut i = len as u32;
        while i > 1 {
            i -= 1;
            let bit = ((code >> i) & 1) as usize;
            let c = children[node][bit];
            assert!(c >= 0, "a code is the prefix of another");
            if c == 0 {
                children[node][bit] = nodes as i32;
                depth[nodes] = depth[node] + 1;
                ones[nodes] = ones[node] && bit == 1;
                node = nodes;
                nodes += 1;
            } else {
                node = c as usize;
            }
        }
        let bit = (code & 1) as usize;
        assert!(children[node][bit] == 0, "a code is the prefix of another");
        children[node][bit] = -(sym as i32) - 1;
        sym += 1;
    }
    assert!(nodes == 256, "not a complete code of 257 symbols");

    let mut m = Machine {
        next: [[0u32; 16]; 256],
        end: [0u8; 256],
    };
    let mut s = 0;
    while s < 256 {
        m.end[s] = if !ones[s] {
            END_NOT_ONES
        } else if depth[s] > 7 {
            END_LONG
        } else {
            END_OK
        };
        let mut nib = 0;
        while nib < 16 {
            let mut node = s;
            let mut t = 0u32;
            let mut b = 4;
            while b > 0 {
                b -= 1;
                let c = children[node][(nib >> b) & 1];
                assert!(c != 0, "an incomplete node");
                if c < 0 {
                    let symbol = (-c - 1) as u32;
                    if symbol == 256 {
                        t |= FAIL;
                        break;
                    }
                    t |= EMIT | (symbol << 8);
                    node = 0;
                } else {
                    node = c as usize;
                }
            }
            m.next[s][nib] = t | node as u32;
            nib += 1;
        }
        s += 1;
    }
    m
}

static MACHINE: Machine = build();

/// The most octets `len` octets of Huffman code decode to (the shortest
/// code has 5 bits).
pub(super) fn max_decoded_len(len: usize) -> usize {
    len * 8 / 5
}

/// Decodes the Huffman string `src`, appending the octets to `out` (which
/// the caller has made room for: [`max_decoded_len`]).
pub(super) fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let mut state = 0usize;
    for &b in src {
        for nib in [b >> 4, b & 0xf] {
            let t = MACHINE.next[state][nib as usize];
            if t & (EMIT | FAIL) != 0 {
                if t & FAIL != 0 {
                    return Err(DecodeError::HuffmanEos);
                }
                out.push((t >> 8) as u8);
            }
            state = (t & 0xff) as usize;
        }
    }
    match MACHINE.end[state] {
        END_OK => Ok(()),
        END_LONG => Err(DecodeError::HuffmanPaddingTooLong),
        _ => Err(DecodeError::HuffmanPaddingNotOnes),
    }
}

/// The length of `src` Huffman coded.
pub(super) fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src.iter().map(|&b| CODES[b as usize].1 as usize).sum();
    bits.div_ceil(8)
}

/// Appends `src` Huffman coded, padded with the most significant bits of EOS.
pub(super) fn encode(src: &[u8], out: &mut impl bytes::BufMut) {
    let mut acc = 0u64;
    let mut bits = 0u32;
    for &b in src {
        let (code, len) = CODES[b as usize];
        acc = (acc << len) | code as u64;
        bits += len as u32;
        while bits >= 8 {
            bits -= 8;
            out.put_u8((acc >> bits) as u8);
        }
        acc &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        out.put_u8(((acc << (8 - bits)) as u8) | (0xff >> bits));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn dec(src: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut out = Vec::new();
        decode(src, &mut out).map(|()| out)
    }

    #[test]
    fn hpack_code_is_complete_and_prefix_free() {
        // Kraft sum exactly 1: sum of 2^(30 - len) == 2^30.
        let kraft: u64 = CODES.iter().map(|&(_, l)| 1u64 << (30 - l)).sum();
        assert_eq!(kraft, 1 << 30);
        for (i, &(c, l)) in CODES.iter().enumerate() {
            assert!((5..=30).contains(&l), "symbol {i}");
            assert!(u64::from(c) < 1u64 << l, "symbol {i}");
            for (j, &(c2, l2)) in CODES.iter().enumerate() {
                if i != j && l2 >= l {
                    assert_ne!(c2 >> (l2 - l), c, "{i} is a prefix of {j}");
                }
            }
        }
        // A few codes checked by hand against RFC 7541 Appendix B.
        assert_eq!(CODES[b'0' as usize], (0x0, 5));
        assert_eq!(CODES[b'a' as usize], (0x3, 5));
        assert_eq!(CODES[b' ' as usize], (0x14, 6));
        assert_eq!(CODES[b'%' as usize], (0x15, 6));
        assert_eq!(CODES[256], (0x3fff_ffff, 30));
    }

    #[test]
    fn hpack_huffman_rfc_c4_c6_strings() {
        // RFC 7541 C.4.1, C.4.2, C.4.3, C.6.1.
        let cases: &[(&str, &[u8])] = &[
            ("f1e3c2e5f23a6ba0ab90f4ff", b"www.example.com"),
            ("a8eb10649cbf", b"no-cache"),
            ("25a849e95ba97d7f", b"custom-key"),
            ("25a849e95bb8e8b4bf", b"custom-value"),
            ("6402", b"302"),
            ("aec3771a4b", b"private"),
            (
                "d07abe941054d444a8200595040b8166e082a62d1bff",
                b"Mon, 21 Oct 2013 20:13:21 GMT",
            ),
            ("9d29ad171863c78f0b97c8e9ae82ae43d3", b"https://www.example.com"),
        ];
        for (hex, plain) in cases {
            assert_eq!(dec(&unhex(hex)).unwrap(), *plain, "{hex}");
            let mut enc = Vec::new();
            encode(plain, &mut enc);
            assert_eq!(enc, unhex(hex));
            assert_eq!(encoded_len(plain), enc.len());
        }
    }

    #[test]
    fn hpack_huffman_every_octet_round_trips() {
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let mut enc = Vec::new();
        encode(&all, &mut enc);
        assert_eq!(dec(&enc).unwrap(), all);
        assert_eq!(dec(b"").unwrap(), b"");
    }

    #[test]
    fn hpack_huffman_errors() {
        // EOS (30 ones) inside the string, then 2 bits of padding.
        assert_eq!(dec(&[0xff, 0xff, 0xff, 0xff]), Err(DecodeError::HuffmanEos));
        // 'a' (00011) then EOS.
        assert_eq!(dec(&[0x1f, 0xff, 0xff, 0xff, 0xff]), Err(DecodeError::HuffmanEos));
        // 'a' then 11 bits of ones padding.
        assert_eq!(dec(&[0x1f, 0xff]), Err(DecodeError::HuffmanPaddingTooLong));
        // 8 bits of ones and nothing else.
        assert_eq!(dec(&[0xff]), Err(DecodeError::HuffmanPaddingTooLong));
        // 'a' then padding 000.
        assert_eq!(dec(&[0x18]), Err(DecodeError::HuffmanPaddingNotOnes));
        // 'a' then padding 101.
        assert_eq!(dec(&[0x1d]), Err(DecodeError::HuffmanPaddingNotOnes));
        // 'a' then padding 111: fine.
        assert_eq!(dec(&[0x1f]).unwrap(), b"a");
    }
}
