//! A route's consent policy: the categories it requires and how they combine. It comes from Envoy
//! route metadata (read by the glue as raw property bytes, decoded here) or from a `routes` rule.

/// A route may require at most this many categories (they are tracked as bits of a `u64`).
pub const MAX_CATEGORIES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// Every required category must be consented.
    All,
    /// At least one required category must be consented.
    Any,
}

impl Match {
    pub fn as_str(self) -> &'static str {
        match self {
            Match::All => "all",
            Match::Any => "any",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePolicy {
    /// Non-empty, unique, in configuration order.
    pub categories: Vec<String>,
    pub match_mode: Match,
}

/// The raw values of the route metadata keys `category`, `categories` and `match`, as the host
/// returned them (`None` where the key is absent).
#[derive(Debug, Default)]
pub struct RouteMetadata {
    pub category: Option<Vec<u8>>,
    pub categories: Option<Vec<u8>>,
    pub match_mode: Option<Vec<u8>>,
}

impl RouteMetadata {
    pub fn is_empty(&self) -> bool {
        self.category.is_none() && self.categories.is_none() && self.match_mode.is_none()
    }

    /// The policy the metadata describes; `Ok(None)` when the route names no category.
    /// Misconfigured metadata is an error (the request is then refused, never forwarded).
    pub fn policy(&self, default_match: Match) -> Result<Option<RoutePolicy>, String> {
        let categories = match (&self.category, &self.categories) {
            (None, None) => {
                if self.match_mode.is_some() {
                    return Err(
                        "route metadata has \"match\" but no \"category\" or \"categories\"".into(),
                    );
                }
                return Ok(None);
            }
            (Some(_), Some(_)) => {
                return Err(
                    "route metadata has both \"category\" and \"categories\"; use one".into(),
                )
            }
            (Some(raw), None) => {
                let name = std::str::from_utf8(raw)
                    .map_err(|_| "route metadata \"category\" is not a UTF-8 string".to_string())?;
                vec![name.to_string()]
            }
            (None, Some(raw)) => decode_string_list(raw).ok_or_else(|| {
                "route metadata \"categories\" must be a list of strings".to_string()
            })?,
        };
        if categories.is_empty() {
            return Err("route metadata \"categories\" is empty".into());
        }
        if categories.len() > MAX_CATEGORIES {
            return Err(format!(
                "route metadata names more than {MAX_CATEGORIES} categories"
            ));
        }
        for (i, c) in categories.iter().enumerate() {
            if c.is_empty() {
                return Err("route metadata has an empty category name".into());
            }
            if categories.get(..i).is_some_and(|before| before.contains(c)) {
                return Err(format!("route metadata repeats the category \"{c}\""));
            }
        }
        let match_mode = match self.match_mode.as_deref() {
            None => default_match,
            Some(b"all") => Match::All,
            Some(b"any") => Match::Any,
            Some(_) => return Err("route metadata \"match\" must be \"all\" or \"any\"".into()),
        };
        Ok(Some(RoutePolicy {
            categories,
            match_mode,
        }))
    }
}

/// Decodes the proxy-wasm pairs encoding Envoy uses for map and list properties: a u32 count,
/// a u32 key length and u32 value length per pair, then each key and each value followed by a
/// NUL. Values may themselves be encoded maps or lists (and so contain NULs): lengths rule.
pub fn decode_pairs(raw: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = raw.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    };
    let count = u32_at(0)?;
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    if data > raw.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let key_len = u32_at(4 + i * 8)?;
        let value_len = u32_at(8 + i * 8)?;
        let key_end = data.checked_add(key_len)?;
        let key = raw.get(data..key_end)?;
        let value_start = key_end.checked_add(1)?;
        let value_end = value_start.checked_add(value_len)?;
        let value = raw.get(value_start..value_end)?;
        out.push((key, value));
        data = value_end.checked_add(1)?;
    }
    if data != raw.len() {
        return None;
    }
    Some(out)
}

/// A list leaf: its elements are the keys of the pairs, with empty values.
pub fn decode_string_list(raw: &[u8]) -> Option<Vec<String>> {
    decode_pairs(raw)?
        .into_iter()
        .map(|(k, v)| {
            if v.is_empty() {
                String::from_utf8(k.to_vec()).ok()
            } else {
                None
            }
        })
        .collect()
}

impl RouteMetadata {
    /// Reads the whole `filter_metadata.<namespace>` struct (one host call). Keys other than
    /// `category`, `categories` and `match` are ignored. `None` when the bytes are not a map.
    pub fn from_struct(raw: &[u8]) -> Option<RouteMetadata> {
        let mut md = RouteMetadata::default();
        for (key, value) in decode_pairs(raw)? {
            let slot = match key {
                b"category" => &mut md.category,
                b"categories" => &mut md.categories,
                b"match" => &mut md.match_mode,
                _ => continue,
            };
            *slot = Some(value.to_vec());
        }
        Some(md)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes like the host does, to test the decoder against the documented layout.
    fn encode_list(items: &[&str]) -> Vec<u8> {
        let mut out = (items.len() as u32).to_le_bytes().to_vec();
        for i in items {
            out.extend((i.len() as u32).to_le_bytes());
            out.extend(0u32.to_le_bytes());
        }
        for i in items {
            out.extend(i.as_bytes());
            out.extend([0, 0]);
        }
        out
    }

    #[test]
    fn decodes_list_leaves() {
        assert_eq!(
            decode_string_list(&encode_list(&["Advertising", "Analytics"])),
            Some(vec!["Advertising".to_string(), "Analytics".to_string()])
        );
        assert_eq!(decode_string_list(&encode_list(&[])), Some(vec![]));
        let mut truncated = encode_list(&["Advertising"]);
        truncated.pop();
        assert_eq!(decode_string_list(&truncated), None);
        assert_eq!(decode_string_list(&[1, 0, 0]), None);
        assert_eq!(decode_string_list(&[0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn reads_the_whole_namespace_struct_in_one_blob() {
        // As Envoy 1.40 returned it for {category: X, match: any, categories: [Advertising, Analytics]}.
        let list = encode_list(&["Advertising", "Analytics"]);
        let mut raw = 3u32.to_le_bytes().to_vec();
        for (k, v) in [(8u32, 1u32), (5, 3), (10, list.len() as u32)] {
            raw.extend(k.to_le_bytes());
            raw.extend(v.to_le_bytes());
        }
        raw.extend(b"category\0X\0match\0any\0categories\0");
        raw.extend(&list);
        raw.push(0);
        let md = RouteMetadata::from_struct(&raw).unwrap();
        assert_eq!(md.category.as_deref(), Some(&b"X"[..]));
        assert_eq!(md.match_mode.as_deref(), Some(&b"any"[..]));
        assert_eq!(
            decode_string_list(md.categories.as_deref().unwrap()).unwrap(),
            vec!["Advertising", "Analytics"]
        );
        assert!(RouteMetadata::from_struct(&raw[..raw.len() - 1]).is_none());
        assert!(RouteMetadata::from_struct(&0u32.to_le_bytes())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn policy_from_metadata() {
        let md =
            |category: Option<&str>, categories: Option<&[&str]>, m: Option<&str>| RouteMetadata {
                category: category.map(|c| c.as_bytes().to_vec()),
                categories: categories.map(encode_list),
                match_mode: m.map(|m| m.as_bytes().to_vec()),
            };
        assert_eq!(md(None, None, None).policy(Match::All), Ok(None));
        assert_eq!(
            md(Some("Ads"), None, None).policy(Match::Any),
            Ok(Some(RoutePolicy {
                categories: vec!["Ads".into()],
                match_mode: Match::Any
            }))
        );
        assert_eq!(
            md(None, Some(&["A", "B"]), Some("any")).policy(Match::All),
            Ok(Some(RoutePolicy {
                categories: vec!["A".into(), "B".into()],
                match_mode: Match::Any
            }))
        );
        for bad in [
            md(Some("A"), Some(&["B"]), None),
            md(None, Some(&[]), None),
            md(Some(""), None, None),
            md(None, Some(&["A", "A"]), None),
            md(Some("A"), None, Some("most")),
            md(None, None, Some("all")),
        ] {
            assert!(bad.policy(Match::All).is_err(), "{bad:?}");
        }
    }
}
