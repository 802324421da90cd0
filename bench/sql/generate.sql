-- A company database for benches/sql_connector.rs, generated inside
-- PostgreSQL (generate_series, no client-side loops):
--
--   createdb portal_bench_sql
--   psql -d portal_bench_sql -v customers=1000000 -v orders=10000000 -f bench/sql/generate.sql
--
-- customers 1-5: 1 000 orders each (erased by the bench, one per run);
-- customer 6: 100 000 orders (exported); the other orders spread over
-- customers 7.. . Every customer's orders are scattered through the table,
-- as they would be after years of trade. `orders` must be a multiple of
-- 100 000.
\set ON_ERROR_STOP on
SET synchronous_commit = off;
SET maintenance_work_mem = '256MB';

DROP TABLE IF EXISTS orders, customers, addresses;

CREATE TABLE addresses (
    address_id  bigint PRIMARY KEY,
    street      text NOT NULL,
    postal_code text NOT NULL,
    city        text NOT NULL
);

CREATE TABLE customers (
    customer_id bigint PRIMARY KEY,
    email       text NOT NULL,
    first_name  text NOT NULL,
    last_name   text NOT NULL,
    phone       text,
    birth_date  date,
    address_id  bigint REFERENCES addresses (address_id),
    created_at  timestamp NOT NULL
);

CREATE TABLE orders (
    order_id        bigint PRIMARY KEY,
    customer_id     bigint NOT NULL REFERENCES customers (customer_id),
    order_date      date NOT NULL,
    status          text NOT NULL,
    total           numeric(10, 2) NOT NULL,
    billing_name    text NOT NULL,
    billing_address text
);

INSERT INTO addresses
SELECT i, 'Damrak ' || (i % 300 + 1), lpad((1000 + i % 9000)::text, 4, '0') || ' AB', 'Amsterdam'
FROM generate_series(1, :customers) AS i;

INSERT INTO customers
SELECT i, 'customer' || i || '@example.com', 'First' || i, 'Last' || i,
       '+31 6 ' || lpad(i::text, 8, '0'), DATE '1960-01-01' + (i % 15000),
       i, TIMESTAMP '2015-01-01' + (i % 3000) * INTERVAL '1 day'
FROM generate_series(1, :customers) AS i;

-- Orders: every (orders / 100 000)th to customer 6; of every
-- (orders / 1 000), numbers 1-5 to customers 1-5; the rest spread.
INSERT INTO orders
SELECT i, c, DATE '2016-01-01' + (i % 3000)::int, CASE WHEN i % 50 = 0 THEN 'open' ELSE 'delivered' END,
       (i % 20000) / 100.0 + 1, 'First' || c || ' Last' || c, 'Damrak ' || (c % 300 + 1) || ', Amsterdam'
FROM (
    SELECT i, CASE
        WHEN i % (:orders / 100000) = 0 THEN 6
        WHEN i % (:orders / 1000) BETWEEN 1 AND 5 THEN i % (:orders / 1000)
        ELSE 7 + (i * 7919) % (:customers - 6)
    END AS c
    FROM generate_series(1::bigint, :orders) AS i
) AS g;

-- The indexes the mapping needs: the look-up, and the keyset paging per
-- customer (customer_id, order_id): the export reads 500 at a time by
-- order_id after the last one, which a (customer_id) index alone answers
-- only by sorting all of the customer's orders for every page.
CREATE INDEX customers_email ON customers (lower(email));
CREATE INDEX orders_customer ON orders (customer_id, order_id);
-- The referenced_by column (the address row of a customer).
CREATE INDEX customers_address ON customers (address_id);
-- Nobody has open orders among the bench's customers: no blocker.
UPDATE orders SET status = 'delivered' WHERE customer_id BETWEEN 1 AND 6 AND status = 'open';
VACUUM ANALYZE;

SELECT customer_id, count(*) FROM orders WHERE customer_id <= 7 GROUP BY 1 ORDER BY 1;
SELECT pg_size_pretty(pg_database_size(current_database())) AS database_size;
