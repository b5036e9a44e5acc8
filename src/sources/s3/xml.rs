//! The few elements of S3's XML answers that the client reads (ListObjectsV2 pages and
//! error bodies): flat, well-known documents, read without a general XML parser.

use anyhow::Context as _;

/// An object in a listing.
#[derive(Debug, Clone)]
pub struct Object {
    pub key: String,
    pub size: u64,
    pub last_modified: jiff::Timestamp,
}

/// One page of a ListObjectsV2 answer.
pub struct ListPage {
    pub objects: Vec<Object>,
    pub truncated: bool,
    pub next: Option<String>,
}

impl ListPage {
    pub fn parse(body: &str) -> anyhow::Result<Self> {
        if !body.contains("<ListBucketResult") {
            anyhow::bail!("not a ListBucketResult");
        }
        let url_encoded = element(body, "EncodingType").is_some_and(|e| e == "url");
        let mut objects = Vec::new();
        let mut rest = body;
        while let Some(start) = rest.find("<Contents>") {
            let end = rest[start..]
                .find("</Contents>")
                .context("a <Contents> element is not closed")?
                + start;
            let item = &rest[start..end];
            let mut key = element(item, "Key").context("an object without <Key>")?;
            if url_encoded {
                key = percent_encoding::percent_decode_str(&key.replace('+', " "))
                    .decode_utf8()
                    .context("a key is not utf-8")?
                    .into_owned();
            }
            let size = element(item, "Size")
                .context("an object without <Size>")?
                .parse()
                .with_context(|| format!("the <Size> of `{key}`"))?;
            let last_modified = element(item, "LastModified")
                .context("an object without <LastModified>")?
                .parse()
                .with_context(|| format!("the <LastModified> of `{key}`"))?;
            objects.push(Object {
                key,
                size,
                last_modified,
            });
            rest = &rest[end..];
        }
        Ok(Self {
            objects,
            truncated: element(body, "IsTruncated").is_some_and(|t| t == "true"),
            next: element(body, "NextContinuationToken").filter(|t| !t.is_empty()),
        })
    }
}

/// The text of the first `<name>` element in `xml`, unescaped.
pub fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(unescape(&xml[start..end]))
}

fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#13;", "\r")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_page_with_url_encoded_keys_and_a_next_token() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult><Name>b</Name><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
<Contents><Key>h/a%20b%26c.db</Key><LastModified>2026-11-28T03:00:00.000Z</LastModified><ETag>&quot;x&quot;</ETag><Size>12</Size></Contents>
<Contents><Key>h/2.db</Key><LastModified>2026-11-28T04:00:00Z</LastModified><Size>0</Size></Contents>
<NextContinuationToken>tok&amp;1</NextContinuationToken></ListBucketResult>"#;
        let page = ListPage::parse(body).unwrap();
        assert_eq!(page.objects.len(), 2);
        assert_eq!(page.objects[0].key, "h/a b&c.db");
        assert_eq!(page.objects[0].size, 12);
        assert_eq!(
            page.objects[1].last_modified.to_string(),
            "2026-11-28T04:00:00Z"
        );
        assert!(page.truncated);
        assert_eq!(page.next.as_deref(), Some("tok&1"));
    }

    #[test]
    fn an_error_body_gives_its_code_and_message() {
        let body =
            "<Error><Code>SignatureDoesNotMatch</Code><Message>bad &amp; wrong</Message></Error>";
        assert_eq!(element(body, "Code").unwrap(), "SignatureDoesNotMatch");
        assert_eq!(element(body, "Message").unwrap(), "bad & wrong");
        assert!(ListPage::parse(body).is_err());
    }
}
