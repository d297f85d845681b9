{{ config(unique_key=['organization_id', 'business_day'], tags=['hourly']) }}

-- Rows stay in key order: a materialized view keeps the physical order of its query after
-- every refresh, so one organization's days sit together on few pages.
select * from {{ ref('daily_warranty') }}
order by organization_id, business_day
