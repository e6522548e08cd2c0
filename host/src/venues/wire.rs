//! Reading feed frames without building a `serde_json::Value` first: a frame is
//! scanned once for the few keys that pick its type (the probe), then parsed
//! straight into its typed message. String fields that are turned into exact
//! numbers are borrowed from the frame when they hold no escape, so a book
//! message allocates only what it keeps.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

/// A JSON string borrowed from the input when it can be.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Cow<'de, str>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }
    d.deserialize_str(V)
}

/// What a probe found in one JSON object: the value of its tag key (when it is
/// a string), whether the tag was there at all, and which of the watched keys
/// are present (bit `i` for `watched[i]`). A `nested` key's object is probed
/// for the same watched keys, for venues that wrap the payload (`msg`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Probe<'a> {
    pub tag: Option<Cow<'a, str>>,
    /// The tag key was present but not a string.
    pub tag_not_text: bool,
    pub keys: u32,
    pub nested_keys: u32,
}

impl Probe<'_> {
    pub fn has(&self, watched_index: usize) -> bool {
        self.keys & (1 << watched_index) != 0
    }
    pub fn nested_has(&self, watched_index: usize) -> bool {
        self.nested_keys & (1 << watched_index) != 0
    }
}

/// Probes `text`, which must be one JSON object; values are skipped, not built.
pub fn probe<'a>(
    text: &'a str,
    tag: &'static str,
    nested: Option<&'static str>,
    watched: &'static [&'static str],
) -> Result<Probe<'a>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let found = de.deserialize_map(ObjectProbe {
        tag,
        nested,
        watched,
        _life: PhantomData,
    })?;
    de.end()?;
    Ok(found)
}

/// A string borrowed from the input when it has no escape (for tuples and
/// keys, where [`text`] cannot be named with `deserialize_with`).
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text(d).map(Text)
    }
}

struct ObjectProbe<'a> {
    tag: &'static str,
    nested: Option<&'static str>,
    watched: &'static [&'static str],
    _life: PhantomData<&'a ()>,
}

impl<'de> Visitor<'de> for ObjectProbe<'de> {
    type Value = Probe<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut found = Probe::default();
        while let Some(Text(key)) = a.next_key()? {
            if let Some(i) = self.watched.iter().position(|w| *w == key) {
                found.keys |= 1 << i;
            }
            if key == self.tag {
                let Any(v) = a.next_value_seed(AnySeed {
                    watched: &[],
                    _life: PhantomData,
                })?;
                found.tag = v.map(|(text, _)| text).unwrap_or(None);
                found.tag_not_text = found.tag.is_none();
            } else if Some(key.as_ref()) == self.nested {
                let Any(v) = a.next_value_seed(AnySeed {
                    watched: self.watched,
                    _life: PhantomData,
                })?;
                found.nested_keys = v.map_or(0, |(_, keys)| keys);
            } else {
                a.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Any value, skipped: a string is kept, an object's watched keys are noted.
struct Any<'a>(Option<(Option<Cow<'a, str>>, u32)>);

struct AnySeed<'a> {
    watched: &'static [&'static str],
    _life: PhantomData<&'a ()>,
}

impl<'de> de::DeserializeSeed<'de> for AnySeed<'de> {
    type Value = Any<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnySeed<'de> {
    type Value = Any<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Any(Some((Some(Cow::Borrowed(v)), 0))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Any(Some((Some(Cow::Owned(v.to_owned())), 0))))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Any(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Any(None))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Any(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Any(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Any(None))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Any(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut keys = 0;
        while let Some(Text(key)) = a.next_key()? {
            if let Some(i) = self.watched.iter().position(|w| *w == key) {
                keys |= 1 << i;
            }
            a.next_value::<IgnoredAny>()?;
        }
        Ok(Any(Some((None, keys))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WATCHED: &[&str] = &["price", "delta"];

    #[test]
    fn a_probe_reads_the_tag_and_notes_watched_keys_at_both_levels() {
        let p = probe(
            r#"{"type":"orderbook_delta","sid":1,"msg":{"price":5,"x":[1,{"delta":2}]},"delta":null}"#,
            "type",
            Some("msg"),
            WATCHED,
        )
        .unwrap();
        assert_eq!(p.tag.as_deref(), Some("orderbook_delta"));
        assert!(!p.tag_not_text);
        assert!(
            p.nested_has(0) && !p.nested_has(1),
            "only the nested object's own keys"
        );
        assert!(p.has(1) && !p.has(0));
    }

    #[test]
    fn a_tag_that_is_not_text_or_missing_is_told_apart() {
        let p = probe(r#"{"type":3,"msg":"hello"}"#, "type", Some("msg"), WATCHED).unwrap();
        assert!(p.tag.is_none() && p.tag_not_text);
        assert_eq!(p.nested_keys, 0);
        let p = probe(r#"{"msg":{}}"#, "type", Some("msg"), WATCHED).unwrap();
        assert!(p.tag.is_none() && !p.tag_not_text);
    }

    #[test]
    fn an_escaped_tag_is_unescaped_and_bad_json_is_an_error() {
        let p = probe(r#"{"type":"a\"b"}"#, "type", None, WATCHED).unwrap();
        assert_eq!(p.tag.as_deref(), Some("a\"b"));
        for bad in ["[1]", "{", r#"{"type":"x"} trailing"#, "\"type\""] {
            assert!(probe(bad, "type", None, WATCHED).is_err(), "{bad}");
        }
    }
}
