#!/usr/bin/env python3
"""Rebuilds schema.sql and data.sql from a checkout of github.com/jOOQ/sakila.

    python3 subset.py /path/to/sakila

schema.sql: the MySQL schema's CREATE TABLE statements, verbatim, for the
tables a customer's data touches (triggers, procedures and views need the
mysql client's DELIMITER and are left out). data.sql: a few customers with
their addresses, rentals and payments, and the rows those point to, taken
from the PostgreSQL COPY data set (the same rows as the MySQL one)."""
import re
import sys

SRC = sys.argv[1]
CUSTOMERS = ["1", "2", "315"]  # 315 has a rental never returned
TABLES = ["country", "city", "address", "language", "film", "staff", "store",
          "inventory", "customer", "rental", "payment"]

schema = open(f"{SRC}/mysql-sakila-db/mysql-sakila-schema.sql", encoding="utf8").read()
out = ["-- The Sakila schema (MySQL), from github.com/jOOQ/sakila",
       "-- mysql-sakila-db/mysql-sakila-schema.sql: only the tables below, verbatim.",
       "SET FOREIGN_KEY_CHECKS=0;", ""]
for t in TABLES:
    m = re.search(r"^CREATE TABLE %s \(.*?^\)ENGINE=InnoDB DEFAULT CHARSET=utf8;" % t,
                  schema, re.S | re.M)
    out.append(m.group(0) + "\n")
open("schema.sql", "w").write("\n".join(out))

tables = {}
cur = None
for line in open(f"{SRC}/postgres-sakila-db/postgres-sakila-insert-data-using-copy.sql", encoding="utf8"):
    line = line.rstrip("\n")
    m = re.match(r"COPY public\.(\w+) \((.*)\) FROM stdin;", line)
    if m:
        cur = m.group(1)
        tables[cur] = ([c.strip() for c in m.group(2).split(",")], [])
        continue
    if cur and line == "\\.":
        cur = None
        continue
    if cur:
        tables[cur][1].append([None if v == "\\N" else v for v in line.split("\t")])


def rows(t, pred):
    cols, rs = tables[t]
    return [dict(zip(cols, r)) for r in rs if pred(dict(zip(cols, r)))]


customers = rows("customer", lambda r: r["customer_id"] in CUSTOMERS)
rentals = rows("rental", lambda r: r["customer_id"] in CUSTOMERS)
payments = rows("payment", lambda r: r["customer_id"] in CUSTOMERS)
staff = rows("staff", lambda r: True)
stores = rows("store", lambda r: True)
inv_ids = {r["inventory_id"] for r in rentals}
inventory = rows("inventory", lambda r: r["inventory_id"] in inv_ids)
film_ids = {r["film_id"] for r in inventory}
films = rows("film", lambda r: r["film_id"] in film_ids)
addr_ids = {r["address_id"] for r in customers + staff + stores}
addresses = rows("address", lambda r: r["address_id"] in addr_ids)
city_ids = {r["city_id"] for r in addresses}
cities = rows("city", lambda r: r["city_id"] in city_ids)
country_ids = {r["country_id"] for r in cities}
countries = rows("country", lambda r: r["country_id"] in country_ids)
languages = rows("language", lambda r: r["language_id"] in {f["language_id"] for f in films})


def lit(v):
    if v is None:
        return "NULL"
    return "'" + v.replace("\\", "\\\\").replace("'", "''") + "'"


out = ["-- A subset of the Sakila data, from github.com/jOOQ/sakila",
       "-- (postgres-sakila-db/postgres-sakila-insert-data-using-copy.sql); made by subset.py.",
       "SET FOREIGN_KEY_CHECKS=0;", ""]


def insert(t, rs, cols, conv=None):
    for r in rs:
        vals = [conv(c, r[c]) if conv else lit(r[c]) for c in cols]
        out.append(f"INSERT INTO {t} ({', '.join(cols)}) VALUES ({', '.join(vals)});")
    out.append("")


def boolean(c, v):
    return {"t": "1", "f": "0"}[v] if c in ("active", "activebool") else lit(v)


insert("language", languages, ["language_id", "name", "last_update"])
insert("country", countries, ["country_id", "country", "last_update"])
insert("city", cities, ["city_id", "city", "country_id", "last_update"])
insert("address", addresses, ["address_id", "address", "address2", "district", "city_id",
                              "postal_code", "phone", "last_update"])
# Films: only what the rentals need (no description, actors or categories).
insert("film", films, ["film_id", "title", "release_year", "language_id", "rental_duration",
                       "rental_rate", "length", "replacement_cost", "last_update"])
insert("staff", staff, ["staff_id", "first_name", "last_name", "address_id", "email",
                        "store_id", "active", "username", "password", "last_update"], boolean)
insert("store", stores, ["store_id", "manager_staff_id", "address_id", "last_update"])
insert("inventory", inventory, ["inventory_id", "film_id", "store_id", "last_update"])
for c in customers:
    c["active"] = c["activebool"]
insert("customer", customers, ["customer_id", "store_id", "first_name", "last_name", "email",
                               "address_id", "active", "create_date", "last_update"], boolean)
insert("rental", rentals, ["rental_id", "rental_date", "inventory_id", "customer_id",
                           "return_date", "staff_id", "last_update"])
insert("payment", payments, ["payment_id", "customer_id", "staff_id", "rental_id", "amount",
                             "payment_date"])
out.append("SET FOREIGN_KEY_CHECKS=1;")
open("data.sql", "w").write("\n".join(out) + "\n")
print(len(customers), "customers,", len(rentals), "rentals,", len(payments), "payments,",
      len(films), "films", file=sys.stderr)
