-- What the operator adds to Sakila for the portal (not part of Sakila).
-- The knowledge the customer states before an erasure: the address's
-- postal code and its house number. Sakila has no house-number column; its
-- address lines start with one ("1913 Hanoi Way"), so the view takes the
-- part before the first space.
CREATE VIEW customer_knowledge AS
SELECT c.customer_id,
       a.postal_code,
       SUBSTRING_INDEX(a.address, ' ', 1) AS house_number
FROM customer c JOIN address a ON a.address_id = c.address_id;

-- The look-up by email (Sakila has no index on it).
CREATE INDEX idx_customer_email ON customer (email);
