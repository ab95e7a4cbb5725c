-- The shop's small catalog. Prices are integer euro cents.
INSERT INTO products (id, name, price_cents) VALUES
    ('sku-coffee',     'Coffee beans, 1 kg',   1890),
    ('sku-tea',        'Green tea, 100 g',      650),
    ('sku-mug',        'Enamel mug',            990),
    ('sku-grinder',    'Hand grinder',         4900),
    ('sku-kettle',     'Gooseneck kettle',     3990),
    ('sku-filter',     'Paper filters, 100',    450),
    ('sku-chocolate',  'Dark chocolate bar',    290),
    ('sku-notebook',   'Notebook, dotted',     1250);
