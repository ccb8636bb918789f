SELECT date_part('hour', ts) AS h, EXTRACT(MONTH FROM date_trunc('week', d)) AS m, date_part('dow', ts), EXTRACT(SECONDS FROM ts) FROM t WHERE date_part('YEAR', d) > 2020
