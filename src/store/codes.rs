use super::Conn;

pub async fn insert(
    conn: &mut Conn,
    id: &str,
    request_id: &str,
    email_hash: &str,
    code_hash: &str,
    now: i64,
    expires_at: i64,
) -> sqlx::Result<()> {
    // One live code per request: a resend makes the earlier code useless.
    sqlx::query("UPDATE verification_codes SET state = 'superseded' WHERE request_id = $1 AND state = 'active'")
        .bind(request_id)
        .execute(&mut *conn)
        .await?;
    insert_first_many(
        conn,
        &[NewCode {
            id: id.to_string(),
            request_id,
            email_hash,
            code_hash,
            created_at: now,
            expires_at,
        }],
    )
    .await
}

/// Codes sent to an address since `since`, across all its requests.
pub async fn sent_to_address_since(
    conn: &mut Conn,
    email_hash: &str,
    since: i64,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM verification_codes WHERE email_hash = $1 AND created_at >= $2",
    )
    .bind(email_hash)
    .bind(since)
    .fetch_one(conn)
    .await
}

/// A first code for each of many new requests (nothing to supersede).
pub struct NewCode<'a> {
    pub id: String,
    pub request_id: &'a str,
    pub email_hash: &'a str,
    pub code_hash: &'a str,
    pub created_at: i64,
    pub expires_at: i64,
}

pub async fn insert_first_many(conn: &mut Conn, rows: &[NewCode<'_>]) -> sqlx::Result<()> {
    super::insert_rows(conn, rows).await
}

impl super::InsertRow for NewCode<'_> {
    const INTO: &'static str =
        "INSERT INTO verification_codes (id, request_id, email_hash, code_hash, \
        created_at, expires_at, attempts, state)";
    fn size(&self) -> usize {
        250
    }
    fn cells(&self) -> Vec<super::Cell<'_>> {
        vec![
            self.id.as_str().into(),
            self.request_id.into(),
            self.email_hash.into(),
            self.code_hash.into(),
            self.created_at.into(),
            self.expires_at.into(),
            0_i64.into(),
            "active".into(),
        ]
    }
}

/// Codes sent since `since`, per address, for many addresses at once.
pub async fn sent_to_addresses_since(
    conn: &mut Conn,
    email_hashes: &[&str],
    since: i64,
) -> sqlx::Result<std::collections::HashMap<String, i64>> {
    if email_hashes.is_empty() {
        return Ok(Default::default());
    }
    let since_param = super::params(conn, 1, 1);
    let sql = format!(
        "SELECT email_hash, COUNT(*) FROM verification_codes WHERE created_at >= {since_param} \
         AND email_hash IN ({}) GROUP BY email_hash",
        super::params(conn, 2, email_hashes.len())
    );
    let mut q = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql))
        .persistent(false)
        .bind(since);
    for h in email_hashes {
        q = q.bind(*h);
    }
    Ok(q.fetch_all(conn).await?.into_iter().collect())
}

pub async fn last_sent_for_request(conn: &mut Conn, request_id: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT MAX(created_at) FROM verification_codes WHERE request_id = $1")
        .bind(request_id)
        .fetch_one(conn)
        .await
}

pub enum Reserve {
    /// An attempt was taken; compare against this hash.
    Attempt {
        code_id: String,
        code_hash: String,
        attempts: i64,
    },
    /// No usable code: used up, burnt, superseded or never sent.
    NoCode,
    Expired,
}

/// Takes one attempt on the request's live code in a single statement, so
/// parallel guesses cannot check more than the allowed number.
pub async fn reserve_attempt(
    conn: &mut Conn,
    request_id: &str,
    max_attempts: i64,
    now: i64,
) -> sqlx::Result<Reserve> {
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "UPDATE verification_codes SET attempts = attempts + 1 \
         WHERE request_id = $1 AND state = 'active' AND attempts < $2 AND expires_at > $3 \
         RETURNING id, code_hash, attempts",
    )
    .bind(request_id)
    .bind(max_attempts)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((code_id, code_hash, attempts)) = row {
        return Ok(Reserve::Attempt {
            code_id,
            code_hash,
            attempts,
        });
    }
    let expired: Option<i64> = sqlx::query_scalar(
        "SELECT COUNT(*) FROM verification_codes WHERE request_id = $1 AND state = 'active' AND expires_at <= $2",
    )
    .bind(request_id)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(if expired.unwrap_or(0) > 0 {
        Reserve::Expired
    } else {
        Reserve::NoCode
    })
}

/// Marks the code used; false when a parallel submit consumed it first.
pub async fn consume(conn: &mut Conn, code_id: &str) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "UPDATE verification_codes SET state = 'used' WHERE id = $1 AND state = 'active'",
    )
    .bind(code_id)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

pub async fn burn(conn: &mut Conn, code_id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE verification_codes SET state = 'burnt' WHERE id = $1 AND state = 'active'")
        .bind(code_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn record_failure(conn: &mut Conn, email_hash: &str, now: i64) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO verification_failures (email_hash, at) VALUES ($1, $2)")
        .bind(email_hash)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn failures_since(conn: &mut Conn, email_hash: &str, since: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM verification_failures WHERE email_hash = $1 AND at >= $2",
    )
    .bind(email_hash)
    .bind(since)
    .fetch_one(conn)
    .await
}

/// Limits only look back an hour; older rows are noise.
pub async fn prune(conn: &mut Conn, before: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM verification_failures WHERE at < $1")
        .bind(before)
        .execute(conn)
        .await?;
    Ok(())
}

/// When the request's still-usable code was sent, if there is one.
pub async fn last_active_for_request(
    conn: &mut Conn,
    request_id: &str,
    now: i64,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT MAX(created_at) FROM verification_codes WHERE request_id = $1 AND state = 'active' AND expires_at > $2",
    )
    .bind(request_id)
    .bind(now)
    .fetch_one(conn)
    .await
}
