-- The example shop of docs/sql-connector.md on PostgreSQL:
--   psql "$SHOP_DATABASE_URL" -f config/sql-example/postgres.sql
-- Customers, their addresses, orders with lines and payments, the
-- newsletter and product reviews; four customers to try the portal with.

CREATE TABLE addresses (
    address_id   integer PRIMARY KEY,
    street       varchar(200) NOT NULL,
    house_number varchar(10)  NOT NULL,
    postal_code  varchar(10)  NOT NULL,
    city         varchar(100) NOT NULL,
    country      char(2)      NOT NULL
);

CREATE TABLE customers (
    customer_id integer PRIMARY KEY,
    email       varchar(254) NOT NULL,
    first_name  varchar(100) NOT NULL,
    last_name   varchar(100) NOT NULL,
    phone       varchar(30),
    birth_date  date,
    is_vip      boolean NOT NULL DEFAULT false,
    avatar      bytea,
    address_id  integer REFERENCES addresses (address_id),
    created_at  timestamp NOT NULL
);
-- The portal finds customers by lower(email).
CREATE INDEX customers_email ON customers (lower(email));

-- What the customer proves to know: postcode and house number of the
-- address on the account.
CREATE VIEW customer_knowledge AS
    SELECT c.customer_id, a.postal_code, a.house_number
    FROM customers c JOIN addresses a ON a.address_id = c.address_id;

CREATE TABLE orders (
    order_id            integer PRIMARY KEY,
    customer_id         integer NOT NULL REFERENCES customers (customer_id),
    order_date          date NOT NULL,
    status              varchar(20) NOT NULL,
    total               numeric(10, 2) NOT NULL,
    billing_name        varchar(200) NOT NULL,
    billing_address     varchar(300),
    billing_postal_code varchar(10)
);
CREATE INDEX orders_customer ON orders (customer_id);

CREATE TABLE order_lines (
    line_id    integer PRIMARY KEY,
    order_id   integer NOT NULL REFERENCES orders (order_id),
    product    varchar(200) NOT NULL,
    quantity   integer NOT NULL,
    unit_price numeric(10, 2) NOT NULL
);
CREATE INDEX order_lines_order ON order_lines (order_id);

CREATE TABLE payments (
    payment_id   integer PRIMARY KEY,
    order_id     integer NOT NULL REFERENCES orders (order_id),
    method       varchar(20) NOT NULL,
    amount       numeric(10, 2) NOT NULL,
    collected_at timestamp NOT NULL,
    iban         varchar(34)
);
CREATE INDEX payments_order ON payments (order_id);

CREATE TABLE newsletter (
    customer_id   integer PRIMARY KEY REFERENCES customers (customer_id),
    subscribed    boolean NOT NULL,
    subscribed_at timestamp
);

CREATE TABLE reviews (
    review_id   integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers (customer_id),
    product     varchar(200) NOT NULL,
    rating      smallint NOT NULL,
    body        text,
    created_at  timestamp NOT NULL
);
CREATE INDEX reviews_customer ON reviews (customer_id);

INSERT INTO addresses VALUES
    (1, 'Damrak', '12', '1012 AB', 'Amsterdam', 'NL'),
    (2, 'Oudegracht', '4a', '3511 LX', 'Utrecht', 'NL'),
    (3, 'Vondelstraat', '22', '1071DJ', 'Amsterdam', 'NL'),
    (4, 'Drottninggatan', '5', '111 51', 'Stockholm', 'SE');

INSERT INTO customers VALUES
    (1, 'anna@example.nl', 'Anna', 'de Vries', '+31 6 12345678', '1985-04-12', true, '\x89504e470d0a', 1, '2021-03-01 10:15:00'),
    (2, 'bram@example.nl', 'Bram', 'Jansen', NULL, NULL, false, NULL, 2, '2022-06-10 08:00:00'),
    (3, 'emma@example.com', 'Emma', 'Clarke', '+44 20 7946 0958', '1990-11-30', false, NULL, 3, '2023-01-05 12:30:00'),
    (4, 'eva@example.nl', 'Eva', 'Lind', NULL, NULL, false, NULL, 4, '2023-09-09 09:09:09');

INSERT INTO orders VALUES
    (101, 1, '2023-05-02', 'delivered', 49.95, 'Anna de Vries', 'Damrak 12, Amsterdam', '1012 AB'),
    (102, 1, '2024-01-15', 'delivered', 100.00, 'Anna de Vries', 'Damrak 12, Amsterdam', '1012 AB'),
    (201, 2, CURRENT_DATE - 10, 'delivered', 25.00, 'Bram Jansen', 'Oudegracht 4a, Utrecht', '3511 LX'),
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
    (5003, 201, 'direct_debit', 25.00, CURRENT_TIMESTAMP - INTERVAL '10' DAY, 'NL20INGB0001234567'),
    (5004, 301, 'card', 12.50, '2023-02-01 18:45:00', NULL);

INSERT INTO newsletter VALUES
    (1, true, '2021-03-01 10:16:00'),
    (3, true, '2023-01-05 12:31:00');

INSERT INTO reviews VALUES
    (7001, 1, 'Teapot', 5, 'Pours without dripping.', '2023-05-20 19:00:00'),
    (7002, 3, 'Tea, black', 4, 'Strong.', '2023-02-10 07:30:00');
