//! Enough of `pg_catalog` for psql's describe commands: `\d`, `\dt`
//! (with patterns) and `\d <view>` list the live views as tables with their
//! columns, types and nullability.
//!
//! psql builds those commands from queries over `pg_class`,
//! `pg_namespace` and `pg_attribute` written in PostgreSQL's own dialect
//! (`OPERATOR(pg_catalog.~)`, `::regclass`, `COLLATE`). Rather than
//! pretend to be that catalog for every query, this module recognises the
//! shapes psql (15 and later) sends and answers them from the views'
//! definitions; any other query over `pg_catalog` relations answers with no
//! rows, which is what psql expects of the features Reelflow does not have
//! (indexes, policies, publications, inheritance). `information_schema` is
//! DataFusion's own and answers ordinary SQL.

use reelflow_dataflows::ColumnType;
use reelflow_dataflows::{VIEWS, View};
use regex::Regex;

use crate::access::Principal;

/// An answer in text columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Option<String>>>,
}

/// The metadata queries of Grafana's PostgreSQL data source (its query
/// builder's version check, schema, table and column lists), written in
/// PostgreSQL's dialect (`current_setting`, `quote_ident`, `parse_ident`,
/// set-returning functions over `search_path`): answered from the views'
/// definitions. Tables live in the schema `public`, which is the search
/// path.
fn grafana(sql: &str) -> Option<Answer> {
    let text = |columns: &[&str], rows: Vec<Vec<String>>| Answer {
        columns: columns.iter().map(|c| (*c).to_string()).collect(),
        rows: rows.into_iter().map(|r| r.into_iter().map(Some).collect()).collect(),
    };
    let lower = sql.to_ascii_lowercase();
    if lower.contains("current_setting('server_version_num')::int/100") {
        return Some(text(&["version"], vec![vec!["1500".into()]]));
    }
    if lower.contains("from information_schema.schemata") && lower.contains("schema_name as \"name\"") {
        return Some(text(&["name"], vec![vec!["public".into()]]));
    }
    if lower.contains("quote_ident(table_name)") && lower.contains("from information_schema.tables") {
        // `WHERE quote_ident(table_schema) = '<schema>'` names one schema;
        // otherwise the tables of the search path come unqualified.
        let schema = lower
            .split("quote_ident(table_schema) = '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next());
        let rows = match schema {
            Some(s) if s != "public" => Vec::new(),
            _ => VIEWS.iter().map(|v| vec![v.name.to_string()]).collect(),
        };
        let mut rows = rows;
        rows.sort();
        return Some(text(&["table"], rows));
    }
    if lower.contains("from information_schema.columns") && lower.contains("parse_ident('") {
        let named = sql
            .split("parse_ident('")
            .nth(1)?
            .split('\'')
            .next()?
            .trim_matches('"')
            .to_string();
        let (schema, table) = named.rsplit_once('.').unwrap_or(("public", named.as_str()));
        let view = VIEWS
            .iter()
            .find(|v| v.name == table.trim_matches('"') && schema.trim_matches('"') == "public");
        let rows = view
            .map(|v| {
                v.columns()
                    .map(|c| {
                        let ty = match c.ty {
                            ColumnType::TextList => "ARRAY",
                            other => format_type(other),
                        };
                        vec![c.name.to_string(), ty.to_string()]
                    })
                    .collect()
            })
            .unwrap_or_default();
        return Some(text(&["column", "type"], rows));
    }
    None
}

/// OID of view `i` (user relations start at 16384 in PostgreSQL).
fn oid(i: usize) -> u32 {
    16384 + i as u32
}

fn format_type(ty: ColumnType) -> &'static str {
    crate::tables::pg_type_names(ty).1
}

/// The items of the outermost select list of `sql` (between its first
/// SELECT and the FROM at depth 0).
fn select_list(sql: &str) -> Vec<String> {
    let lower = sql.to_ascii_lowercase();
    let Some(start) = lower.find("select") else {
        return Vec::new();
    };
    let mut items = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    let chars: Vec<char> = sql[start + 6..].chars().collect();
    let lower_chars: Vec<char> = lower[start + 6..].chars().collect();
    let mut i = 0;
    let mut quoted = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            quoted = !quoted;
        }
        if !quoted {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(current.trim().to_string());
                    current.clear();
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let rest: String = lower_chars[i..lower_chars.len().min(i + 6)].iter().collect();
            if depth == 0 && (rest == "\nfrom " || rest == " from ") {
                break;
            }
        }
        current.push(c);
        i += 1;
    }
    if !current.trim().is_empty() {
        items.push(current.trim().to_string());
    }
    items
}

/// The name an item is shown under: its `AS "alias"` or `AS alias`, else
/// its last identifier.
fn item_name(item: &str) -> String {
    let lower = item.to_ascii_lowercase();
    if let Some(at) = lower.rfind(" as ") {
        return item[at + 4..].trim().trim_matches('"').to_string();
    }
    item.rsplit(['.', ' ', '(', ')'])
        .find(|s| !s.is_empty())
        .unwrap_or("?column?")
        .to_string()
}

/// The psql pattern `OPERATOR(pg_catalog.~) '^(…)$'` on `relname`, as a
/// regex.
fn relname_pattern(sql: &str) -> Option<Regex> {
    let re = Regex::new(r"relname OPERATOR\(pg_catalog\.~\) '((?:[^']|'')*)'").ok()?;
    let caps = re.captures(sql)?;
    Regex::new(&caps[1].replace("''", "'")).ok()
}

/// The oid in `… = '16385'` after `what`.
fn oid_after(sql: &str, what: &str) -> Option<u32> {
    sql.match_indices(what).find_map(|(at, _)| {
        let rest = sql[at + what.len()..].trim_start().strip_prefix('=')?.trim_start();
        let digits: String = rest
            .trim_start_matches('\'')
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

/// The views `principal` may see listed (all of them: a view it may not
/// read is empty for it, not hidden).
fn listed(pattern: Option<&Regex>) -> Vec<(usize, &'static str)> {
    VIEWS
        .iter()
        .enumerate()
        .filter(|(_, v)| pattern.is_none_or(|p| p.is_match(v.name)))
        .map(|(i, v)| (i, v.name))
        .collect()
}

/// psql's answer for `sql`, if it is a catalog query.
pub fn answer(sql: &str, _principal: &Principal) -> Option<Answer> {
    if let Some(answer) = grafana(sql) {
        return Some(answer);
    }
    if !sql.contains("pg_catalog.") {
        return None;
    }
    let items = select_list(sql);
    let columns: Vec<String> = items.iter().map(|i| item_name(i)).collect();
    let empty = || Answer {
        columns: columns.clone(),
        rows: Vec::new(),
    };
    let from_class = sql.contains("FROM pg_catalog.pg_class c");

    // \d, \dt, \dt PATTERN: the list of relations.
    if from_class && sql.contains("c.relkind IN (") && sql.contains("as \"Name\"") {
        let kinds = sql.split("c.relkind IN (").nth(1)?.split(')').next()?;
        if !kinds.contains("'r'") {
            return Some(empty());
        }
        let pattern = relname_pattern(sql);
        let rows = listed(pattern.as_ref())
            .into_iter()
            .map(|(i, name)| {
                columns
                    .iter()
                    .map(|c| match c.as_str() {
                        "Schema" => Some("public".to_string()),
                        "Name" => Some(name.to_string()),
                        "Type" => Some("table".to_string()),
                        "Owner" => Some("reelflow".to_string()),
                        "Persistence" => Some("permanent".to_string()),
                        "Access method" => None,
                        "Size" => Some("live view".to_string()),
                        "Description" => Some(VIEWS[i].doc.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        return Some(Answer { columns, rows });
    }

    // \d NAME, step 1: which relations match.
    if from_class && sql.contains("c.relname OPERATOR(pg_catalog.~)") && columns.first().is_some_and(|c| c == "oid") {
        let pattern = relname_pattern(sql);
        let rows = listed(pattern.as_ref())
            .into_iter()
            .map(|(i, name)| vec![Some(oid(i).to_string()), Some("public".into()), Some(name.into())])
            .collect();
        return Some(Answer { columns, rows });
    }

    // \d NAME, step 2: the relation's flags.
    if sql.contains("c.relchecks") && from_class {
        let o = oid_after(sql, "c.oid")?;
        let i = (o.checked_sub(16384)?) as usize;
        VIEWS.get(i)?;
        let row = columns
            .iter()
            .map(|c| {
                Some(
                    match c.as_str() {
                        "relchecks" => "0",
                        "relkind" => "r",
                        "reltablespace" => "0",
                        "relpersistence" => "p",
                        "relreplident" => "d",
                        "amname" => "heap",
                        "relhasindex"
                        | "relhasrules"
                        | "relhastriggers"
                        | "relrowsecurity"
                        | "relforcerowsecurity"
                        | "relhasoids"
                        | "relispartition" => "f",
                        _ => "",
                    }
                    .to_string(),
                )
            })
            .collect();
        return Some(Answer {
            columns,
            rows: vec![row],
        });
    }

    // \d NAME, step 3: the columns.
    if sql.contains("FROM pg_catalog.pg_attribute a") && sql.contains("a.attname") {
        let o = oid_after(sql, "a.attrelid")?;
        let i = (o.checked_sub(16384)?) as usize;
        let view = *View::ALL.get(i)?;
        let rows = view
            .def()
            .columns()
            .map(|col| {
                items
                    .iter()
                    .map(|item| {
                        let item = item.to_ascii_lowercase();
                        if item.starts_with("a.attname") {
                            Some(col.name.to_string())
                        } else if item.contains("format_type") {
                            Some(format_type(col.ty).to_string())
                        } else if item.starts_with("a.attnotnull") {
                            Some(if col.nullable { "f" } else { "t" }.to_string())
                        } else if item.starts_with("a.attidentity") || item.starts_with("a.attgenerated") {
                            Some(String::new())
                        } else if item.starts_with("a.attstorage") {
                            Some(
                                if matches!(col.ty, ColumnType::Text | ColumnType::Uuid | ColumnType::TextList) {
                                    "x"
                                } else {
                                    "p"
                                }
                                .to_string(),
                            )
                        } else {
                            None
                        }
                    })
                    .collect()
            })
            .collect();
        return Some(Answer { columns, rows });
    }

    // Anything else over the catalog's relations: Reelflow has none of it.
    let touches_relation = ["pg_catalog.pg_", "FROM pg_catalog"].iter().any(|p| sql.contains(p));
    touches_relation.then(empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DT: &str = r#"SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relkind IN ('r','p','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND c.relname OPERATOR(pg_catalog.~) '^(video.*)$' COLLATE pg_catalog.default
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"#;

    #[test]
    fn grafanas_metadata_queries_list_the_views_and_their_columns() {
        let version = answer(
            "SELECT current_setting('server_version_num')::int/100 as version",
            &Principal::Admin,
        )
        .expect("version");
        assert_eq!(version.rows, vec![vec![Some("1500".to_string())]]);
        let tables = answer(
            "SELECT quote_ident(table_name) AS \"table\"\n      FROM information_schema.tables\n      WHERE quote_ident(table_schema) = 'public'\n      ORDER BY 1",
            &Principal::Admin,
        )
        .expect("tables");
        assert_eq!(tables.rows.len(), VIEWS.len());
        let none = answer(
            "SELECT quote_ident(table_name) AS \"table\" FROM information_schema.tables WHERE quote_ident(table_schema) = 'other' ORDER BY 1",
            &Principal::Admin,
        )
        .expect("no tables");
        assert!(none.rows.is_empty());
        let columns = answer(
            "SELECT quote_ident(column_name) AS \"column\", data_type AS \"type\" FROM information_schema.columns WHERE CASE WHEN array_length(parse_ident('video_status'),1) = 2 THEN true ELSE quote_ident(table_name) = 'video_status' END",
            &Principal::Admin,
        )
        .expect("columns");
        assert_eq!(columns.rows[0], vec![Some("video_id".into()), Some("text".into())]);
        assert!(
            columns
                .rows
                .contains(&vec![Some("renditions".into()), Some("ARRAY".into())])
        );
    }

    #[test]
    fn dt_lists_the_views_matching_the_pattern() {
        let a = answer(DT, &Principal::Admin).expect("answered");
        assert_eq!(a.columns, ["Schema", "Name", "Type", "Owner"]);
        let names: Vec<_> = a.rows.iter().map(|r| r[1].clone().unwrap_or_default()).collect();
        assert_eq!(names, ["video_status", "video_stats"]);
    }

    #[test]
    fn d_name_finds_the_relation_then_its_columns() {
        let find = "SELECT c.oid,\n  n.nspname,\n  c.relname\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\nWHERE c.relname OPERATOR(pg_catalog.~) '^(video_stats)$' COLLATE pg_catalog.default\n  AND pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 2, 3;";
        let a = answer(find, &Principal::Admin).expect("answered");
        assert_eq!(
            a.rows,
            vec![vec![
                Some("16385".into()),
                Some("public".into()),
                Some("video_stats".into())
            ]]
        );
        let columns = "SELECT a.attname,\n  pg_catalog.format_type(a.atttypid, a.atttypmod),\n  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)\n   FROM pg_catalog.pg_attrdef d\n   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),\n  a.attnotnull,\n  (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t\n   WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,\n  a.attidentity,\n  a.attgenerated\nFROM pg_catalog.pg_attribute a\nWHERE a.attrelid = '16385' AND a.attnum > 0 AND NOT a.attisdropped\nORDER BY a.attnum;";
        let a = answer(columns, &Principal::Admin).expect("answered");
        assert_eq!(a.columns.len(), 7);
        assert_eq!(a.rows[0][0].as_deref(), Some("video_id"));
        assert_eq!(a.rows[0][1].as_deref(), Some("text"));
        assert_eq!(a.rows[0][3].as_deref(), Some("t"));
        assert_eq!(a.rows[1][1].as_deref(), Some("bigint"));
        let policies = "SELECT pol.polname, pol.polpermissive\nFROM pg_catalog.pg_policy pol\nWHERE pol.polrelid = '16385' ORDER BY 1;";
        assert!(answer(policies, &Principal::Admin).expect("answered").rows.is_empty());
        assert!(answer("SELECT * FROM video_stats", &Principal::Admin).is_none());
    }
}
