//! KMIP's binary encoding, TTLV: every item is a 3-byte tag, a 1-byte type,
//! a 4-byte big-endian length and a value padded with zeros to a multiple of
//! 8 bytes. A structure's value is its children, one after the other.
//!
//! Byte strings are held in [`Zeroizing`] buffers: requests and responses
//! carry wrapped secrets in the clear inside the TLS tunnel.

use std::fmt;

use zeroize::Zeroizing;

/// A KMIP tag: the low 24 bits are significant (0x42xxxx for the standard's).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(pub u32);

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:06X}", self.0)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The item types of KMIP 1.x and their type bytes.
mod ty {
    pub const STRUCTURE: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const LONG_INTEGER: u8 = 0x03;
    pub const BIG_INTEGER: u8 = 0x04;
    pub const ENUMERATION: u8 = 0x05;
    pub const BOOLEAN: u8 = 0x06;
    pub const TEXT_STRING: u8 = 0x07;
    pub const BYTE_STRING: u8 = 0x08;
    pub const DATE_TIME: u8 = 0x09;
    pub const INTERVAL: u8 = 0x0A;
}

/// Length of the tag, type and length fields that open every item.
pub const HEADER_LEN: usize = 8;

/// A server sends nothing nested deeper than a handful of levels; the cap
/// keeps a hostile one from exhausting the stack.
const MAX_DEPTH: usize = 16;

#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    Structure(Vec<Item>),
    Integer(i32),
    LongInteger(i64),
    /// Two's complement, big-endian, as sent (a multiple of 8 bytes).
    BigInteger(Vec<u8>),
    Enumeration(u32),
    Boolean(bool),
    TextString(String),
    ByteString(Zeroizing<Vec<u8>>),
    /// Seconds since the Unix epoch.
    DateTime(i64),
    /// Seconds.
    Interval(u32),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Structure(items) => f.debug_list().entries(items).finish(),
            Self::Integer(v) => write!(f, "Integer({v})"),
            Self::LongInteger(v) => write!(f, "LongInteger({v})"),
            Self::BigInteger(v) => write!(f, "BigInteger({} bytes)", v.len()),
            Self::Enumeration(v) => write!(f, "Enumeration(0x{v:08X})"),
            Self::Boolean(v) => write!(f, "Boolean({v})"),
            Self::TextString(v) => write!(f, "TextString({v:?})"),
            // Byte strings may be key material: never print their contents.
            Self::ByteString(v) => write!(f, "ByteString({} bytes)", v.len()),
            Self::DateTime(v) => write!(f, "DateTime({v})"),
            Self::Interval(v) => write!(f, "Interval({v})"),
        }
    }
}

impl Value {
    fn type_byte(&self) -> u8 {
        match self {
            Self::Structure(_) => ty::STRUCTURE,
            Self::Integer(_) => ty::INTEGER,
            Self::LongInteger(_) => ty::LONG_INTEGER,
            Self::BigInteger(_) => ty::BIG_INTEGER,
            Self::Enumeration(_) => ty::ENUMERATION,
            Self::Boolean(_) => ty::BOOLEAN,
            Self::TextString(_) => ty::TEXT_STRING,
            Self::ByteString(_) => ty::BYTE_STRING,
            Self::DateTime(_) => ty::DATE_TIME,
            Self::Interval(_) => ty::INTERVAL,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Self::Structure(_) => "structure",
            Self::Integer(_) => "integer",
            Self::LongInteger(_) => "long integer",
            Self::BigInteger(_) => "big integer",
            Self::Enumeration(_) => "enumeration",
            Self::Boolean(_) => "boolean",
            Self::TextString(_) => "text string",
            Self::ByteString(_) => "byte string",
            Self::DateTime(_) => "date-time",
            Self::Interval(_) => "interval",
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Item {
    pub tag: Tag,
    pub value: Value,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TtlvError {
    #[error("item {tag}: needs {need} bytes, {have} left")]
    Truncated { tag: Tag, need: usize, have: usize },
    #[error("item header: needs {HEADER_LEN} bytes, {0} left")]
    TruncatedHeader(usize),
    #[error("item {tag}: unknown type 0x{ty:02X}")]
    UnknownType { tag: Tag, ty: u8 },
    #[error("item {tag}: a {ty} cannot be {len} bytes long")]
    BadLength { tag: Tag, ty: &'static str, len: u32 },
    #[error("item {tag}: non-zero padding")]
    BadPadding { tag: Tag },
    #[error("item {tag}: boolean value {value} is neither 0 nor 1")]
    BadBoolean { tag: Tag, value: u64 },
    #[error("item {tag}: text string is not UTF-8")]
    BadUtf8 { tag: Tag },
    #[error("structures nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("{0} bytes left over after the message")]
    Trailing(usize),
    #[error("item {tag}: value of {len} bytes does not fit a TTLV length")]
    TooLong { tag: Tag, len: usize },
    #[error("expected {expected}, found {found} ({tag})")]
    Unexpected { tag: Tag, expected: &'static str, found: &'static str },
}

impl Item {
    pub fn new(tag: Tag, value: Value) -> Self {
        Self { tag, value }
    }

    pub fn structure(tag: Tag, children: Vec<Item>) -> Self {
        Self::new(tag, Value::Structure(children))
    }

    pub fn integer(tag: Tag, v: i32) -> Self {
        Self::new(tag, Value::Integer(v))
    }

    pub fn enumeration(tag: Tag, v: u32) -> Self {
        Self::new(tag, Value::Enumeration(v))
    }

    pub fn text(tag: Tag, v: impl Into<String>) -> Self {
        Self::new(tag, Value::TextString(v.into()))
    }

    pub fn bytes(tag: Tag, v: &[u8]) -> Self {
        Self::new(tag, Value::ByteString(Zeroizing::new(v.to_vec())))
    }

    /// Appends the TTLV encoding of this item to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), TtlvError> {
        let start = out.len();
        out.extend_from_slice(&self.tag.0.to_be_bytes()[1..]);
        out.push(self.value.type_byte());
        out.extend_from_slice(&[0; 4]); // the length, patched below
        let body = out.len();
        match &self.value {
            Value::Structure(items) => {
                for item in items {
                    item.encode(out)?;
                }
            }
            Value::Integer(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::LongInteger(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::BigInteger(v) => out.extend_from_slice(v),
            Value::Enumeration(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::Boolean(v) => out.extend_from_slice(&u64::from(*v).to_be_bytes()),
            Value::TextString(v) => out.extend_from_slice(v.as_bytes()),
            Value::ByteString(v) => out.extend_from_slice(v),
            Value::DateTime(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::Interval(v) => out.extend_from_slice(&v.to_be_bytes()),
        }
        let len = out.len() - body;
        let len32 = u32::try_from(len).map_err(|_| TtlvError::TooLong { tag: self.tag, len })?;
        out[start + 4..body].copy_from_slice(&len32.to_be_bytes());
        out.resize(body + padded(len), 0);
        Ok(())
    }

    /// Encodes into a buffer that is wiped when dropped.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, TtlvError> {
        let mut out = Zeroizing::new(Vec::new());
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Decodes exactly one item that fills all of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Self, TtlvError> {
        let (item, rest) = decode_item(buf, 0)?;
        if !rest.is_empty() {
            return Err(TtlvError::Trailing(rest.len()));
        }
        Ok(item)
    }

    /// The first child with this tag, if this is a structure holding one.
    pub fn child(&self, tag: Tag) -> Option<&Item> {
        self.children(tag).next()
    }

    /// Every child with this tag, in order; none if this is not a structure.
    pub fn children(&self, tag: Tag) -> impl Iterator<Item = &Item> {
        let items: &[Item] = match &self.value {
            Value::Structure(items) => items,
            _ => &[],
        };
        items.iter().filter(move |i| i.tag == tag)
    }

    pub fn as_enumeration(&self) -> Result<u32, TtlvError> {
        match self.value {
            Value::Enumeration(v) => Ok(v),
            _ => Err(self.unexpected("an enumeration")),
        }
    }

    pub fn as_integer(&self) -> Result<i32, TtlvError> {
        match self.value {
            Value::Integer(v) => Ok(v),
            _ => Err(self.unexpected("an integer")),
        }
    }

    pub fn as_text(&self) -> Result<&str, TtlvError> {
        match &self.value {
            Value::TextString(v) => Ok(v),
            _ => Err(self.unexpected("a text string")),
        }
    }

    pub fn as_bytes(&self) -> Result<&[u8], TtlvError> {
        match &self.value {
            Value::ByteString(v) => Ok(v),
            _ => Err(self.unexpected("a byte string")),
        }
    }

    fn unexpected(&self, expected: &'static str) -> TtlvError {
        TtlvError::Unexpected { tag: self.tag, expected, found: self.value.type_name() }
    }
}

/// Values are padded to the next multiple of 8 bytes.
fn padded(len: usize) -> usize {
    len.div_ceil(8) * 8
}

/// Reads an item's header: tag, type byte and value length.
pub fn decode_header(buf: &[u8]) -> Result<(Tag, u8, u32), TtlvError> {
    let header: &[u8; HEADER_LEN] =
        buf.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or(TtlvError::TruncatedHeader(buf.len()))?;
    let tag = Tag(u32::from_be_bytes([0, header[0], header[1], header[2]]));
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    Ok((tag, header[3], len))
}

fn decode_item(buf: &[u8], depth: usize) -> Result<(Item, &[u8]), TtlvError> {
    let (tag, type_byte, len) = decode_header(buf)?;
    let rest = &buf[HEADER_LEN..];
    // A u32 always fits a usize on the 32- and 64-bit targets Coffre builds for.
    let value_len = len as usize;
    let full = padded(value_len);
    if rest.len() < full {
        return Err(TtlvError::Truncated { tag, need: full, have: rest.len() });
    }
    let (value, padding) = rest[..full].split_at(value_len);
    if padding.iter().any(|&b| b != 0) {
        return Err(TtlvError::BadPadding { tag });
    }
    let value = decode_value(tag, type_byte, value, depth)?;
    Ok((Item { tag, value }, &rest[full..]))
}

fn decode_value(tag: Tag, type_byte: u8, v: &[u8], depth: usize) -> Result<Value, TtlvError> {
    let bad_length = |ty: &'static str| TtlvError::BadLength { tag, ty, len: v.len() as u32 };
    Ok(match type_byte {
        ty::STRUCTURE => Value::Structure(decode_children(v, depth + 1)?),
        ty::INTEGER => Value::Integer(i32::from_be_bytes(v.try_into().map_err(|_| bad_length("integer"))?)),
        ty::LONG_INTEGER => {
            Value::LongInteger(i64::from_be_bytes(v.try_into().map_err(|_| bad_length("long integer"))?))
        }
        ty::BIG_INTEGER if v.len().is_multiple_of(8) => Value::BigInteger(v.to_vec()),
        ty::BIG_INTEGER => return Err(bad_length("big integer")),
        ty::ENUMERATION => Value::Enumeration(u32::from_be_bytes(v.try_into().map_err(|_| bad_length("enumeration"))?)),
        ty::BOOLEAN => {
            let raw = u64::from_be_bytes(v.try_into().map_err(|_| bad_length("boolean"))?);
            match raw {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                value => return Err(TtlvError::BadBoolean { tag, value }),
            }
        }
        ty::TEXT_STRING => {
            Value::TextString(std::str::from_utf8(v).map_err(|_| TtlvError::BadUtf8 { tag })?.to_owned())
        }
        ty::BYTE_STRING => Value::ByteString(Zeroizing::new(v.to_vec())),
        ty::DATE_TIME => Value::DateTime(i64::from_be_bytes(v.try_into().map_err(|_| bad_length("date-time"))?)),
        ty::INTERVAL => Value::Interval(u32::from_be_bytes(v.try_into().map_err(|_| bad_length("interval"))?)),
        ty => return Err(TtlvError::UnknownType { tag, ty }),
    })
}

fn decode_children(mut buf: &[u8], depth: usize) -> Result<Vec<Item>, TtlvError> {
    if depth > MAX_DEPTH {
        return Err(TtlvError::TooDeep);
    }
    let mut items = Vec::new();
    while !buf.is_empty() {
        let (item, rest) = decode_item(buf, depth)?;
        items.push(item);
        buf = rest;
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tag every encoding example of KMIP 1.2 (section 9.1.2) uses.
    const T: Tag = Tag(0x420020);

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| {
                let text = std::str::from_utf8(pair).expect("ascii");
                u8::from_str_radix(text, 16).expect("hex digit pair")
            })
            .collect()
    }

    fn encoded(item: &Item) -> Vec<u8> {
        item.to_bytes().expect("encodes").to_vec()
    }

    /// Encodes, compares with the spec's bytes, and decodes them back.
    fn check(item: Item, spec: &str) {
        let bytes = hex(spec);
        assert_eq!(encoded(&item), bytes, "encoding of {item:?}");
        assert_eq!(Item::decode(&bytes).expect("decodes"), item);
    }

    #[test]
    fn spec_integer() {
        check(Item::integer(T, 8), "42 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 00");
    }

    #[test]
    fn spec_long_integer() {
        check(
            Item::new(T, Value::LongInteger(123_456_789_000_000_000)),
            "42 00 20 | 03 | 00 00 00 08 | 01 B6 9B 4B A5 74 92 00",
        );
    }

    #[test]
    fn spec_big_integer() {
        // 1234567890000000000000000000, sign-extended to 16 bytes.
        check(
            Item::new(T, Value::BigInteger(hex("00 00 00 00 03 FD 35 EB 6B C2 DF 46 18 08 00 00"))),
            "42 00 20 | 04 | 00 00 00 10 | 00 00 00 00 03 FD 35 EB 6B C2 DF 46 18 08 00 00",
        );
    }

    #[test]
    fn spec_enumeration() {
        check(Item::enumeration(T, 255), "42 00 20 | 05 | 00 00 00 04 | 00 00 00 FF 00 00 00 00");
    }

    #[test]
    fn spec_boolean() {
        check(Item::new(T, Value::Boolean(true)), "42 00 20 | 06 | 00 00 00 08 | 00 00 00 00 00 00 00 01");
    }

    #[test]
    fn spec_text_string() {
        check(
            Item::text(T, "Hello World"),
            "42 00 20 | 07 | 00 00 00 0B | 48 65 6C 6C 6F 20 57 6F 72 6C 64 00 00 00 00 00",
        );
    }

    #[test]
    fn spec_byte_string() {
        check(Item::bytes(T, &[1, 2, 3]), "42 00 20 | 08 | 00 00 00 03 | 01 02 03 00 00 00 00 00");
    }

    #[test]
    fn spec_date_time() {
        // Friday, March 14, 2008, 11:56:40 GMT.
        check(Item::new(T, Value::DateTime(1_205_495_800)), "42 00 20 | 09 | 00 00 00 08 | 00 00 00 00 47 DA 67 F8");
    }

    #[test]
    fn spec_interval() {
        // Ten days.
        check(Item::new(T, Value::Interval(864_000)), "42 00 20 | 0A | 00 00 00 04 | 00 0D 2F 00 00 00 00 00");
    }

    #[test]
    fn spec_structure() {
        check(
            Item::structure(T, vec![Item::enumeration(Tag(0x420004), 254), Item::integer(Tag(0x420005), 255)]),
            "42 00 20 | 01 | 00 00 00 20 | 42 00 04 | 05 | 00 00 00 04 | 00 00 00 FE 00 00 00 00 \
             | 42 00 05 | 02 | 00 00 00 04 | 00 00 00 FF 00 00 00 00",
        );
    }

    #[test]
    fn lengths_on_8_byte_boundaries_take_no_padding() {
        check(Item::bytes(T, &[0xAB; 8]), "42 00 20 | 08 | 00 00 00 08 | AB AB AB AB AB AB AB AB");
        check(Item::text(T, ""), "42 00 20 | 07 | 00 00 00 00");
    }

    #[test]
    fn nested_structures_round_trip() {
        let item = Item::structure(
            T,
            vec![
                Item::structure(Tag(0x420001), vec![Item::text(Tag(0x420002), "a"), Item::bytes(Tag(0x420003), &[])]),
                Item::new(Tag(0x420004), Value::Boolean(false)),
            ],
        );
        assert_eq!(Item::decode(&encoded(&item)).expect("decodes"), item);
    }

    #[test]
    fn rejects_truncated_value() {
        let mut bytes = encoded(&Item::text(T, "Hello World"));
        bytes.truncate(bytes.len() - 1);
        assert_eq!(Item::decode(&bytes), Err(TtlvError::Truncated { tag: T, need: 16, have: 15 }));
    }

    #[test]
    fn rejects_missing_padding() {
        // The spec pads every value: a 4-byte integer occupies 8.
        let bytes = hex("42 00 20 | 02 | 00 00 00 04 | 00 00 00 08");
        assert_eq!(Item::decode(&bytes), Err(TtlvError::Truncated { tag: T, need: 8, have: 4 }));
    }

    #[test]
    fn rejects_truncated_header() {
        assert_eq!(Item::decode(&hex("42 00 20 02")), Err(TtlvError::TruncatedHeader(4)));
    }

    #[test]
    fn rejects_non_zero_padding() {
        let bytes = hex("42 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 01");
        assert_eq!(Item::decode(&bytes), Err(TtlvError::BadPadding { tag: T }));
    }

    #[test]
    fn rejects_wrong_fixed_lengths() {
        let bytes = hex("42 00 20 | 02 | 00 00 00 08 | 00 00 00 00 00 00 00 08");
        assert_eq!(Item::decode(&bytes), Err(TtlvError::BadLength { tag: T, ty: "integer", len: 8 }));
        let bytes = hex("42 00 20 | 09 | 00 00 00 04 | 47 DA 67 F8 00 00 00 00");
        assert_eq!(Item::decode(&bytes), Err(TtlvError::BadLength { tag: T, ty: "date-time", len: 4 }));
    }

    #[test]
    fn rejects_bad_boolean_text_and_type() {
        let bytes = hex("42 00 20 | 06 | 00 00 00 08 | 00 00 00 00 00 00 00 02");
        assert_eq!(Item::decode(&bytes), Err(TtlvError::BadBoolean { tag: T, value: 2 }));
        let bytes = hex("42 00 20 | 07 | 00 00 00 01 | FF 00 00 00 00 00 00 00");
        assert_eq!(Item::decode(&bytes), Err(TtlvError::BadUtf8 { tag: T }));
        let bytes = hex("42 00 20 | 0B | 00 00 00 00");
        assert_eq!(Item::decode(&bytes), Err(TtlvError::UnknownType { tag: T, ty: 0x0B }));
    }

    #[test]
    fn rejects_child_overrunning_its_structure() {
        // The structure claims 8 bytes; its integer child needs 16.
        let bytes = hex("42 00 20 | 01 | 00 00 00 08 | 42 00 04 | 02 | 00 00 00 04 | 00 00 00 01 00 00 00 00");
        assert_eq!(Item::decode(&bytes), Err(TtlvError::Truncated { tag: Tag(0x420004), need: 8, have: 0 }));
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = encoded(&Item::integer(T, 1));
        bytes.extend_from_slice(&[0; 8]);
        assert_eq!(Item::decode(&bytes), Err(TtlvError::Trailing(8)));
    }

    #[test]
    fn rejects_deep_nesting() {
        let mut item = Item::integer(T, 1);
        for _ in 0..=MAX_DEPTH {
            item = Item::structure(T, vec![item]);
        }
        assert_eq!(Item::decode(&encoded(&item)), Err(TtlvError::TooDeep));
    }

    #[test]
    fn accessors_check_types() {
        let item = Item::structure(T, vec![Item::text(Tag(1), "x"), Item::enumeration(Tag(2), 7)]);
        assert_eq!(item.child(Tag(1)).map(Item::as_text), Some(Ok("x")));
        assert_eq!(item.child(Tag(2)).map(Item::as_enumeration), Some(Ok(7)));
        assert!(item.child(Tag(3)).is_none());
        assert!(matches!(item.child(Tag(1)).map(Item::as_bytes), Some(Err(TtlvError::Unexpected { .. }))));
    }

    #[test]
    fn debug_hides_byte_strings() {
        let shown = format!("{:?}", Item::bytes(T, b"secret key"));
        assert!(!shown.contains("secret") && shown.contains("10 bytes"), "{shown}");
    }
}
