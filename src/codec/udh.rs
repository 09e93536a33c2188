//! User Data Header (TS 23.040 §9.2.3.24): a list of information elements. Known elements get
//! typed accessors (concatenation 8/16-bit, application ports 8/16-bit, national language
//! shifts); unknown ones are kept as they are, never dropped.

use thiserror::Error;

/// Information element identifiers used here.
pub mod iei {
    pub const CONCAT_8: u8 = 0x00;
    pub const PORTS_8: u8 = 0x04;
    pub const PORTS_16: u8 = 0x05;
    pub const CONCAT_16: u8 = 0x08;
    pub const SINGLE_SHIFT: u8 = 0x24;
    pub const LOCKING_SHIFT: u8 = 0x25;
}

/// A malformed UDH.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UdhError {
    #[error("empty UDH")]
    Empty,
    #[error("UDH length {udhl} runs past the {available} octets of user data")]
    TooLong { udhl: usize, available: usize },
    #[error("information element 0x{iei:02x} at UDH octet {offset} has length {len}, past the end of the UDH")]
    ElementTooLong { iei: u8, offset: usize, len: usize },
}

/// One information element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ie {
    pub id: u8,
    pub data: Vec<u8>,
}

/// Concatenation information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concat {
    pub reference: u16,
    pub bits: u8,
    pub total: u8,
    pub seq: u8,
}

/// A parsed UDH.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Udh {
    pub ies: Vec<Ie>,
}

impl Udh {
    /// Parse a UDH from the start of user data (UDHL first). Returns the UDH and the octets it
    /// took (UDHL + 1).
    pub fn parse(ud: &[u8]) -> Result<(Udh, usize), UdhError> {
        let &udhl = ud.first().ok_or(UdhError::Empty)?;
        let udhl = udhl as usize;
        if udhl + 1 > ud.len() {
            return Err(UdhError::TooLong {
                udhl,
                available: ud.len().saturating_sub(1),
            });
        }
        let body = &ud[1..=udhl];
        let mut ies = Vec::new();
        let mut i = 0;
        while i < body.len() {
            let id = body[i];
            let Some(&len) = body.get(i + 1) else {
                return Err(UdhError::ElementTooLong {
                    iei: id,
                    offset: i + 1,
                    len: 1,
                });
            };
            let len = len as usize;
            let end = i + 2 + len;
            if end > body.len() {
                return Err(UdhError::ElementTooLong {
                    iei: id,
                    offset: i + 1,
                    len,
                });
            }
            ies.push(Ie {
                id,
                data: body[i + 2..end].to_vec(),
            });
            i = end;
        }
        Ok((Udh { ies }, udhl + 1))
    }

    /// The encoded UDH, UDHL first.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![0u8];
        for ie in &self.ies {
            v.push(ie.id);
            v.push(ie.data.len() as u8);
            v.extend_from_slice(&ie.data);
        }
        v[0] = (v.len() - 1) as u8;
        v
    }

    /// Octets of the encoded UDH, UDHL included.
    pub fn len(&self) -> usize {
        1 + self.ies.iter().map(|ie| 2 + ie.data.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.ies.is_empty()
    }

    pub fn concat(&self) -> Option<Concat> {
        self.ies
            .iter()
            .find_map(|ie| match (ie.id, ie.data.as_slice()) {
                (iei::CONCAT_8, &[r, t, s]) => Some(Concat {
                    reference: r as u16,
                    bits: 8,
                    total: t,
                    seq: s,
                }),
                (iei::CONCAT_16, &[r1, r2, t, s]) => Some(Concat {
                    reference: u16::from_be_bytes([r1, r2]),
                    bits: 16,
                    total: t,
                    seq: s,
                }),
                _ => None,
            })
    }

    /// (destination, source) application ports.
    pub fn ports(&self) -> Option<(u16, u16)> {
        self.ies
            .iter()
            .find_map(|ie| match (ie.id, ie.data.as_slice()) {
                (iei::PORTS_8, &[d, s]) => Some((d as u16, s as u16)),
                (iei::PORTS_16, &[d1, d2, s1, s2]) => {
                    Some((u16::from_be_bytes([d1, d2]), u16::from_be_bytes([s1, s2])))
                }
                _ => None,
            })
    }

    /// National language (locking, single) shift identifiers.
    pub fn shifts(&self) -> (Option<u8>, Option<u8>) {
        let find = |id| {
            self.ies
                .iter()
                .find(|ie| ie.id == id && ie.data.len() == 1)
                .map(|ie| ie.data[0])
        };
        (find(iei::LOCKING_SHIFT), find(iei::SINGLE_SHIFT))
    }

    pub fn with_concat(mut self, c: Concat) -> Self {
        let ie = if c.bits == 16 {
            let r = c.reference.to_be_bytes();
            Ie {
                id: iei::CONCAT_16,
                data: vec![r[0], r[1], c.total, c.seq],
            }
        } else {
            Ie {
                id: iei::CONCAT_8,
                data: vec![c.reference as u8, c.total, c.seq],
            }
        };
        self.ies.insert(0, ie);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_known_and_unknown() {
        let (u, n) = Udh::parse(&hex::decode("0e0003420301050400000000700142").unwrap()).unwrap();
        assert_eq!(n, 15);
        assert_eq!(
            u.concat(),
            Some(Concat {
                reference: 0x42,
                bits: 8,
                total: 3,
                seq: 1
            })
        );
        assert_eq!(u.ports(), Some((0, 0)));
        assert_eq!(
            u.ies[2],
            Ie {
                id: 0x70,
                data: vec![0x42]
            }
        );
        assert_eq!(
            u.encode(),
            hex::decode("0e0003420301050400000000700142").unwrap()
        );
        assert!(Udh::parse(&[5, 0, 3, 1]).is_err());
        assert!(Udh::parse(&[3, 0, 5, 1]).is_err());
        assert!(Udh::parse(&[]).is_err());
    }
}
