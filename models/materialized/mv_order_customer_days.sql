{{ config(unique_key=['organization_id', 'customer_id'], tags=['15min']) }}

-- Refreshed after the capture triggers are installed, so its watermark is at or after
-- capture_since and every change since is recorded (else the block is read live).
-- depends_on: {{ ref('capture_triggers') }}

-- Per customer, the set of business days on which they ordered, as a datemultirange: a
-- range's unique_customers counts the customers whose set overlaps it, exact over any range
-- (PERF-NOTES: ~1 ms for 730 days, a seventh of the size of distinct daily rows).
select
    organization_id,
    customer_id,
    range_agg(daterange(business_day, business_day, '[]')) as order_days
from {{ ref('daily_order_customers') }}
group by 1, 2
order by 1, 2
