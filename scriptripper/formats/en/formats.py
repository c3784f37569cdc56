# How dates and times read on the server's pages (the admin's job pages, tokens, webhook deliveries): with
# seconds, since jobs take seconds; in UTC (TIME_ZONE). The API writes ISO 8601 and is not concerned.
DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
