{{ config(unique_key=['organization_id', 'business_day'], rollups=true, tags=['15min']) }}

-- Refreshed after the capture triggers are installed, so its watermark is at or after
-- capture_since and every change since is recorded (else the block is read live).
-- depends_on: {{ ref('capture_triggers') }}

-- A rebuild writes the rows in key order, so one organization's days sit together on few
-- pages (the incremental refresh appends; --full-refresh restores the order).
select * from {{ ref('daily_labor') }}
order by organization_id, business_day
