-- The example shop of docs/sql-connector.md on SQLite:
--   sqlite3 shop.db < config/sql-example/sqlite.sql
-- Customers, their addresses, orders with lines and payments, the
-- newsletter and product reviews; four customers to try the portal with.

CREATE TABLE addresses (
    address_id   INTEGER PRIMARY KEY,
    street       varchar(200) NOT NULL,
    house_number varchar(10)  NOT NULL,
    postal_code  varchar(10)  NOT NULL,
    city         varchar(100) NOT NULL,
    country      char(2)      NOT NULL
);

CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    email       varchar(254) NOT NULL,
    first_name  varchar(100) NOT NULL,
    last_name   varchar(100) NOT NULL,
    phone       varchar(30),
    birth_date  DATE,
    is_vip      BOOLEAN NOT NULL DEFAULT 0,
    avatar      BLOB,
    address_id  INTEGER REFERENCES addresses (address_id),
    created_at  DATETIME NOT NULL
);
-- The portal finds customers by lower(email).
CREATE INDEX customers_email ON customers (lower(email));

-- What the customer proves to know: postcode and house number of the
-- address on the account.
CREATE VIEW customer_knowledge AS
    SELECT c.customer_id, a.postal_code, a.house_number
    FROM customers c JOIN addresses a ON a.address_id = c.address_id;

CREATE TABLE orders (
    order_id            INTEGER PRIMARY KEY,
    customer_id         INTEGER NOT NULL REFERENCES customers (customer_id),
    order_date          DATE NOT NULL,
    status              varchar(20) NOT NULL,
    total               DECIMAL(10, 2) NOT NULL,
    billing_name        varchar(200) NOT NULL,
    billing_address     varchar(300),
    billing_postal_code varchar(10)
);
CREATE INDEX orders_customer ON orders (customer_id);

CREATE TABLE order_lines (
    line_id    INTEGER PRIMARY KEY,
    order_id   INTEGER NOT NULL REFERENCES orders (order_id),
    product    varchar(200) NOT NULL,
    quantity   INTEGER NOT NULL,
    unit_price DECIMAL(10, 2) NOT NULL
);
CREATE INDEX order_lines_order ON order_lines (order_id);

CREATE TABLE payments (
    payment_id   INTEGER PRIMARY KEY,
    order_id     INTEGER NOT NULL REFERENCES orders (order_id),
    method       varchar(20) NOT NULL,
    amount       DECIMAL(10, 2) NOT NULL,
    collected_at DATETIME NOT NULL,
    iban         varchar(34)
);
CREATE INDEX payments_order ON payments (order_id);

CREATE TABLE newsletter (
    customer_id   INTEGER PRIMARY KEY REFERENCES customers (customer_id),
    subscribed    BOOLEAN NOT NULL,
    subscribed_at DATETIME
);

CREATE TABLE reviews (
    review_id   INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    product     varchar(200) NOT NULL,
    rating      smallint NOT NULL,
    body        text,
    created_at  DATETIME NOT NULL
);
CREATE INDEX reviews_customer ON reviews (customer_id);

INSERT INTO addresses VALUES
    (1, 'Damrak', '12', '1012 AB', 'Amsterdam', 'NL'),
    (2, 'Oudegracht', '4a', '3511 LX', 'Utrecht', 'NL'),
    (3, 'Vondelstraat', '22', '1071DJ', 'Amsterdam', 'NL'),
    (4, 'Drottninggatan', '5', '111 51', 'Stockholm', 'SE');

INSERT INTO customers VALUES
    (1, 'anna@example.nl', 'Anna', 'de Vries', '+31 6 12345678', '1985-04-12', 1, X'89504e470d0a', 1, '2021-03-01 10:15:00'),
    (2, 'bram@example.nl', 'Bram', 'Jansen', NULL, NULL, 0, NULL, 2, '2022-06-10 08:00:00'),
    (3, 'emma@example.com', 'Emma', 'Clarke', '+44 20 7946 0958', '1990-11-30', 0, NULL, 3, '2023-01-05 12:30:00'),
    (4, 'eva@example.nl', 'Eva', 'Lind', NULL, NULL, 0, NULL, 4, '2023-09-09 09:09:09');

INSERT INTO orders VALUES
    (101, 1, '2023-05-02', 'delivered', 49.95, 'Anna de Vries', 'Damrak 12, Amsterdam', '1012 AB'),
    (102, 1, '2024-01-15', 'delivered', 100.00, 'Anna de Vries', 'Damrak 12, Amsterdam', '1012 AB'),
    (201, 2, date('now', '-10 days'), 'delivered', 25.00, 'Bram Jansen', 'Oudegracht 4a, Utrecht', '3511 LX'),
    (301, 3, '2023-02-01', 'delivered', 12.50, 'Emma Clarke', 'Vondelstraat 22, Amsterdam', '1071DJ');

INSERT INTO order_lines VALUES
    (1001, 101, 'Teapot', 1, 39.95),
    (1002, 101, 'Tea, green', 2, 5.00),
    (1003, 102, 'Kettle', 1, 100.00),
    (2001, 201, 'Mug', 2, 12.50),
    (3001, 301, 'Tea, black', 1, 12.50);

INSERT INTO payments VALUES
    (5001, 101, 'ideal', 49.95, '2023-05-02 14:00:00', NULL),
    (5002, 102, 'direct_debit', 100.00, '2024-01-20 06:00:00', 'NL91ABNA0417164300'),
    (5003, 201, 'direct_debit', 25.00, datetime('now', '-10 days'), 'NL20INGB0001234567'),
    (5004, 301, 'card', 12.50, '2023-02-01 18:45:00', NULL);

INSERT INTO newsletter VALUES
    (1, 1, '2021-03-01 10:16:00'),
    (3, 1, '2023-01-05 12:31:00');

INSERT INTO reviews VALUES
    (7001, 1, 'Teapot', 5, 'Pours without dripping.', '2023-05-20 19:00:00'),
    (7002, 3, 'Tea, black', 4, 'Strong.', '2023-02-10 07:30:00');
