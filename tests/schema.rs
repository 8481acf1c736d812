//! One schema: the SQLite and PostgreSQL migrations describe the same tables.
//!
//! Both migration sets are applied the way the daemon applies them (`Store::open`): to a
//! SQLite file and to a fresh PostgreSQL database (see `common::pg`). Each database is then
//! read back from its own catalogue into lines such as
//!
//! ```text
//! requests.due_at int null
//! requests.sms_consent int not null default 0
//! index requests_live_number on requests unique (service, number) where state in 'pending',…
//! ```
//!
//! with the types normalised (`INTEGER`/`BIGINT` → `int`, …) and PostgreSQL's rewriting of
//! predicates undone (`state = ANY (ARRAY['a'::text])` → `state in 'a'`), and the two sets
//! of lines must be equal: tables, columns, types, nullability, defaults, primary keys,
//! foreign keys, unique constraints and indexes with their partial-index predicates.
//!
//! Without a reachable PostgreSQL the test says SKIPPED, except under `CI=true`, where it
//! fails.

mod common;

use callbackd::store::Store;
use common::pg::TestDb;
use sqlx::{Connection, Row};
use std::collections::BTreeSet;

/// A SQL type as one of the few kinds the two backends share.
fn kind(declared: &str) -> String {
    match declared.trim().to_ascii_lowercase().as_str() {
        "integer" | "int" | "bigint" | "smallint" | "int2" | "int4" | "int8" => "int".into(),
        "text" | "character varying" | "varchar" => "text".into(),
        "real" | "double precision" | "float4" | "float8" => "real".into(),
        "blob" | "bytea" => "blob".into(),
        // Anything else is kept as declared: it then differs from the other side and shows.
        other => other.into(),
    }
}

/// An SQL expression (a partial index predicate, a default) in one spelling for both
/// backends: lower case, PostgreSQL's `= ANY (ARRAY[…])` back to `in (…)`, casts
/// (`::text`) dropped, then parentheses and white space dropped.
fn expr(sql: &str) -> String {
    let mut s = sql.to_ascii_lowercase();
    while let Some(at) = s.find("= any (array[") {
        let inner_start = at + "= any (array[".len();
        let Some(len) = s[inner_start..].find("])") else { break };
        let inner = s[inner_start..inner_start + len].to_owned();
        s = format!("{}in ({inner}){}", &s[..at], &s[inner_start + len + 2..]);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(at) = rest.find("::") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let word = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        rest = &after[word.unwrap_or(after.len())..];
    }
    out.push_str(rest);
    out.chars().filter(|c| !c.is_whitespace() && *c != '(' && *c != ')').collect()
}

/// One line per column, key and index of the SQLite database at `url`.
async fn sqlite_schema(url: &str) -> BTreeSet<String> {
    let mut c = sqlx::SqliteConnection::connect(url).await.expect("open the SQLite file");
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name",
    )
    .fetch_all(&mut c)
    .await
    .expect("tables")
    .iter()
    .map(|r| r.get(0))
    .collect();
    let mut lines = BTreeSet::new();
    for t in &tables {
        lines.insert(format!("table {t}"));
        let cols = sqlx::query(&format!("PRAGMA table_info({t})")).fetch_all(&mut c).await;
        let mut pk: Vec<(i64, String)> = Vec::new();
        for col in cols.expect("table_info") {
            let name: String = col.get("name");
            let ty: String = col.get("type");
            let pk_pos: i64 = col.get("pk");
            // A primary key column is never NULL (SQLite reports notnull = 0 for it).
            let not_null = col.get::<i64, _>("notnull") == 1 || pk_pos > 0;
            let default: Option<String> = col.get("dflt_value");
            lines.insert(column(t, &name, &kind(&ty), not_null, default.as_deref()));
            if pk_pos > 0 {
                pk.push((pk_pos, name));
            }
        }
        pk.sort();
        let pk: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
        lines.insert(format!("{t} primary key ({})", pk.join(", ")));
        let fks = sqlx::query(&format!("PRAGMA foreign_key_list({t})")).fetch_all(&mut c).await;
        for fk in fks.expect("foreign_key_list") {
            let (from, table, to): (String, String, String) =
                (fk.get("from"), fk.get("table"), fk.get("to"));
            lines.insert(format!("{t}.{from} references {table} ({to})"));
        }
        let indexes = sqlx::query(&format!("PRAGMA index_list({t})")).fetch_all(&mut c).await;
        for ix in indexes.expect("index_list") {
            let name: String = ix.get("name");
            let unique = ix.get::<i64, _>("unique") == 1;
            let origin: String = ix.get("origin");
            let cols: Vec<String> = sqlx::query(&format!("PRAGMA index_info({name})"))
                .fetch_all(&mut c)
                .await
                .expect("index_info")
                .iter()
                .map(|r| r.get("name"))
                .collect();
            let predicate = if ix.get::<i64, _>("partial") == 1 {
                let sql: String = sqlx::query("SELECT sql FROM sqlite_master WHERE name = ?1")
                    .bind(&name)
                    .fetch_one(&mut c)
                    .await
                    .expect("index sql")
                    .get(0);
                let upper = sql.to_ascii_uppercase();
                let at = upper.rfind(" WHERE ").expect("a partial index has WHERE");
                Some(sql[at + " WHERE ".len()..].to_owned())
            } else {
                None
            };
            match origin.as_str() {
                // The primary key's own index: covered by the primary key line.
                "pk" => {}
                // UNIQUE in the table definition: named by the database, compared by shape.
                "u" => {
                    lines.insert(format!("{t} unique ({})", cols.join(", ")));
                }
                _ => {
                    lines.insert(index(&name, t, unique, &cols, predicate.as_deref()));
                }
            }
        }
    }
    let _ = c.close().await;
    lines
}

/// The same lines for the PostgreSQL database at `url` (schema `public`).
async fn postgres_schema(url: &str) -> BTreeSet<String> {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect to PostgreSQL");
    let mut lines = BTreeSet::new();
    let tables: Vec<String> = sqlx::query(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' \
         AND table_name NOT LIKE '\\_sqlx%' ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .expect("tables")
    .iter()
    .map(|r| r.get(0))
    .collect();
    for t in &tables {
        lines.insert(format!("table {t}"));
        let cols = sqlx::query(
            "SELECT column_name::text, data_type::text, is_nullable::text, column_default::text \
             FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind(t)
        .fetch_all(&mut c)
        .await
        .expect("columns");
        for col in cols {
            let (name, ty, nullable): (String, String, String) =
                (col.get(0), col.get(1), col.get(2));
            let default: Option<String> = col.get(3);
            lines.insert(column(t, &name, &kind(&ty), nullable == "NO", default.as_deref()));
        }
        // Constraints: primary key, unique, foreign keys, with their columns in order.
        let constraints = sqlx::query(
            "SELECT con.contype::text, \
                    ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o) \
                          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n \
                          ORDER BY k.o), \
                    ref.relname::text, \
                    ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o) \
                          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n \
                          ORDER BY k.o) \
             FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid \
             JOIN pg_namespace ns ON ns.oid = rel.relnamespace \
             LEFT JOIN pg_class ref ON ref.oid = con.confrelid \
             WHERE ns.nspname = 'public' AND rel.relname = $1 AND con.contype IN ('p', 'u', 'f')",
        )
        .bind(t)
        .fetch_all(&mut c)
        .await
        .expect("constraints");
        for con in constraints {
            let (kind, cols): (String, Vec<String>) = (con.get(0), con.get(1));
            match kind.as_str() {
                "p" => lines.insert(format!("{t} primary key ({})", cols.join(", "))),
                "u" => lines.insert(format!("{t} unique ({})", cols.join(", "))),
                _ => {
                    let (table, to): (String, Vec<String>) = (con.get(2), con.get(3));
                    lines.insert(format!("{t}.{} references {table} ({})", cols[0], to.join(", ")))
                }
            };
        }
        // Indexes that no constraint owns.
        let indexes = sqlx::query(
            "SELECT i.relname::text, ix.indisunique, pg_get_expr(ix.indpred, ix.indrelid), \
                    ARRAY(SELECT pg_get_indexdef(ix.indexrelid, g, true) \
                          FROM generate_series(1, ix.indnatts) g ORDER BY g) \
             FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid \
             JOIN pg_class rel ON rel.oid = ix.indrelid \
             JOIN pg_namespace ns ON ns.oid = rel.relnamespace \
             WHERE ns.nspname = 'public' AND rel.relname = $1 \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = ix.indexrelid)",
        )
        .bind(t)
        .fetch_all(&mut c)
        .await
        .expect("indexes");
        for ix in indexes {
            let (name, unique): (String, bool) = (ix.get(0), ix.get(1));
            let predicate: Option<String> = ix.get(2);
            let cols: Vec<String> = ix.get(3);
            lines.insert(index(&name, t, unique, &cols, predicate.as_deref()));
        }
    }
    let _ = c.close().await;
    lines
}

fn column(table: &str, name: &str, kind: &str, not_null: bool, default: Option<&str>) -> String {
    let null = if not_null { "not null" } else { "null" };
    match default {
        Some(d) => format!("{table}.{name} {kind} {null} default {}", expr(d)),
        None => format!("{table}.{name} {kind} {null}"),
    }
}

fn index(
    name: &str,
    table: &str,
    unique: bool,
    cols: &[String],
    predicate: Option<&str>,
) -> String {
    let unique = if unique { "unique " } else { "" };
    let predicate = predicate.map(|p| format!(" where {}", expr(p))).unwrap_or_default();
    format!("index {name} on {table} {unique}({}){predicate}", cols.join(", "))
}

fn files(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(common::repo().join(dir))
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn both_backends_have_the_same_migration_files() {
    assert_eq!(files("migrations/sqlite"), files("migrations/postgres"));
}

#[test]
fn predicates_and_defaults_read_the_same_from_both_catalogues() {
    // As SQLite keeps the source text, and as PostgreSQL prints its parsed form.
    let pairs = [
        (
            "state IN ('pending','dialing','retry_wait')",
            "(state = ANY (ARRAY['pending'::text, 'dialing'::text, 'retry_wait'::text]))",
        ),
        (
            "deadline_missed = 0 AND state IN ('pending','retry_wait')",
            "((deadline_missed = 0) AND (state = ANY (ARRAY['pending'::text, 'retry_wait'::text])))",
        ),
        (
            "number IS NOT NULL AND final_at IS NOT NULL",
            "((number IS NOT NULL) AND (final_at IS NOT NULL))",
        ),
        ("state = 'connected'", "(state = 'connected'::text)"),
        ("'queued'", "'queued'::text"),
        ("0", "0"),
    ];
    for (sqlite, postgres) in pairs {
        assert_eq!(expr(sqlite), expr(postgres), "{sqlite:?} vs {postgres:?}");
    }
    // Different predicates stay different.
    assert_ne!(expr("state IN ('pending')"), expr("state IN ('pending','dialing')"));
    assert_ne!(expr("x IS NULL"), expr("x IS NOT NULL"));
    assert_eq!(
        (kind("INTEGER"), kind("bigint"), kind("TEXT")),
        ("int".into(), "int".into(), "text".into())
    );
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_make_the_same_schema() {
    let Some(db) = TestDb::create().await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("schema.db");
    let sqlite_url = format!("sqlite:{}", file.display());
    Store::open(&sqlite_url).await.expect("SQLite migrations").close().await;
    Store::open(&db.url).await.expect("PostgreSQL migrations").close().await;

    let lite = sqlite_schema(&format!("sqlite://{}", file.display())).await;
    let pg = postgres_schema(&db.url).await;
    assert!(lite.iter().any(|l| l.contains(" where ")), "no partial index read: {lite:#?}");
    let only_lite: Vec<&String> = lite.difference(&pg).collect();
    let only_pg: Vec<&String> = pg.difference(&lite).collect();
    assert!(
        only_lite.is_empty() && only_pg.is_empty(),
        "the migrations differ.\nonly in migrations/sqlite:\n  {}\nonly in migrations/postgres:\n  {}",
        only_lite.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  "),
        only_pg.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  "),
    );
    eprintln!("{} schema lines agree", lite.len());
}
