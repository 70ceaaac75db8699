import codecs

import pytest

from pipeline.transforms import records
from pipeline.transforms.records import TRANSACTION_COLUMNS, RefusedFile

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
LINE = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom"


def parse(text: str, limit: int = 65536):
    return records.parse_file(text, TRANSACTION_COLUMNS, limit)


@pytest.mark.parametrize("data, text, encoding", [
    ("£2.55 Curaçao".encode(), "£2.55 Curaçao", "utf-8"),
    (codecs.BOM_UTF8 + "£2.55".encode(), "£2.55", "utf-8-sig"),
    ("£2.55 Curaçao – “quoted”".encode("cp1252"), "£2.55 Curaçao – “quoted”", "cp1252"),
    (b"\xa32.55 \x81", "£2.55 \x81", "latin-1"),        # 0x81 is undefined in cp1252
    ("£2.55".encode("utf-16"), "£2.55", "utf-16"),
    ("Curaçao £1\n".encode() + "£2.55\n".encode("cp1252"), "Curaçao £1\n£2.55\n", "utf-8+cp1252"),
    (b"plain\n\xa32\n\x81\n", "plain\n£2\n\x81\n", "cp1252+latin-1"),
])
def test_a_file_is_decoded_in_its_encoding_never_with_replacement_characters(data, text, encoding):
    assert records.decode(data) == (text, encoding)


def test_a_quoted_line_break_comma_and_quote_stay_inside_one_record():
    desc = 'SET OF 3, "RED"\nHEARTS'
    line = '536365,85123A,"SET OF 3, ""RED""\nHEARTS",6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom'
    parsed = parse(f"{HEADER}\n{line}\n{LINE}\n")
    assert [r.raw for r in parsed.records] == [line, LINE]
    assert parsed.records[0].fields["description"] == desc
    assert parsed.records[0].error is None and parsed.records[0].fields["quantity"] == "6"


def test_columns_are_read_by_header_name_in_any_order_and_extra_ones_are_reported():
    header = "Country,customer_id,UnitPrice,InvoiceDate,Quantity,Description,Channel,StockCode,InvoiceNo"
    parsed = parse(f"{header}\r\nUnited Kingdom,17850.0,2.55,2010-12-01 08:26:00,6,HEART,web,85123A,536365\r\n")
    assert parsed.extra_columns == ["Channel"]
    assert parsed.records[0].fields == {
        "invoice_no": "536365", "stock_code": "85123A", "description": "HEART", "quantity": "6",
        "invoice_date": "2010-12-01 08:26:00", "unit_price": "2.55", "customer_id": "17850.0",
        "country": "United Kingdom"}


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    (HEADER.replace(",UnitPrice", "") + "\n", "UnitPrice"),
    (HEADER.replace("StockCode", "Code").replace(",Country", "") + "\n", "StockCode, Country"),
    (LINE + "\n", "InvoiceNo"),
])
def test_a_file_without_a_required_column_is_refused_naming_it(text, words):
    with pytest.raises(RefusedFile, match=words):
        parse(text)


def test_blank_lines_and_a_repeated_header_are_not_records():
    assert [r.raw for r in parse(f"{HEADER}\n\n{LINE}\n   \n{HEADER}\n{LINE}\n").records] == [LINE, LINE]


def test_records_too_long_or_badly_quoted_carry_a_reason():
    long_line = "536365,85123A," + '""' * 50_000 + ",6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom"
    unclosed = '536365,85123A,"OPEN QUOTE,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom'
    parsed = parse(f"{HEADER}\n{long_line}\n{LINE}\n{LINE[:30]}\n{unclosed}\n")
    got = [(r.error or ("", ""))[0] for r in parsed.records]
    assert got == ["LINE_TOO_LONG", "", "UNPARSEABLE_ROW", "UNPARSEABLE_ROW"]
    assert parsed.records[0].raw == long_line
    assert "expected 8 fields, found 3" in parsed.records[2].error[1]
    assert "not closed" in parsed.records[3].error[1]


def test_an_unclosed_quote_swallows_at_most_the_record_limit():
    unclosed = '536365,85123A,"OPEN,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom'
    parsed = parse(f"{HEADER}\n{unclosed}\n" + f"{LINE}\n" * 20, limit=1000)
    codes = [(r.error or ("", ""))[0] for r in parsed.records]
    assert codes[0] == "LINE_TOO_LONG"
    assert sum(len(r.raw.split("\n")) for r in parsed.records) == 21   # every physical line is in a record
    assert codes.count("") >= 5


def test_malformed_quoting_is_unparseable():
    bad = '536365,85123A,"HEART"X,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom'
    assert parse(f"{HEADER}\n{bad}\n").records[0].error[0] == "UNPARSEABLE_ROW"
