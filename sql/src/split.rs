//! Splits a simple-protocol query string into its statements, at the
//! semicolons outside quotes, dollar quotes and comments.

/// The non-empty statements of `query`, in order.
pub fn statements(query: &str) -> Vec<String> {
    let chars: Vec<char> = query.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' | '"' => {
                // Quoted text; a doubled quote is an escaped one.
                current.push(c);
                i += 1;
                while i < chars.len() {
                    current.push(chars[i]);
                    if chars[i] == c {
                        if chars.get(i + 1) == Some(&c) {
                            current.push(c);
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            '-' if next == Some('-') => {
                while i < chars.len() && chars[i] != '\n' {
                    current.push(chars[i]);
                    i += 1;
                }
                continue;
            }
            '/' if next == Some('*') => {
                current.push_str("/*");
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    current.push(chars[i]);
                    i += 1;
                }
                current.push_str("*/");
                i += 1;
            }
            '$' => {
                // $tag$ … $tag$
                let tag_end = chars[i + 1..].iter().position(|&ch| ch == '$').map(|p| i + 1 + p);
                let is_tag = tag_end
                    .is_some_and(|e| chars[i + 1..e].iter().all(|ch| ch.is_alphanumeric() || *ch == '_'))
                    && !chars.get(i + 1).is_some_and(char::is_ascii_digit);
                match tag_end {
                    Some(e) if is_tag => {
                        let tag: String = chars[i..=e].iter().collect();
                        current.push_str(&tag);
                        i = e + 1;
                        let rest: String = chars[i..].iter().collect();
                        match rest.find(&tag) {
                            Some(p) => {
                                current.push_str(&rest[..p + tag.len()]);
                                i += rest[..p + tag.len()].chars().count();
                            }
                            None => {
                                current.push_str(&rest);
                                i = chars.len();
                            }
                        }
                        continue;
                    }
                    _ => current.push(c),
                }
            }
            ';' => {
                if !current.trim().is_empty() {
                    out.push(current.trim().to_string());
                }
                current.clear();
            }
            _ => current.push(c),
        }
        i += 1;
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn splits_outside_quotes_and_comments() {
        assert_eq!(statements("SELECT 1; SELECT 2;"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(
            statements("SELECT 'a;b'; SELECT \"x;y\""),
            ["SELECT 'a;b'", "SELECT \"x;y\""]
        );
        assert_eq!(
            statements("SELECT 'it''s;' -- c;\n; SELECT 3"),
            ["SELECT 'it''s;' -- c;", "SELECT 3"]
        );
        assert_eq!(statements("SELECT /* ; */ 1"), ["SELECT /* ; */ 1"]);
        assert_eq!(statements("SELECT $$a;b$$, $1"), ["SELECT $$a;b$$, $1"]);
        assert!(statements(" ; ;").is_empty());
    }
}
