-- The application schema of contract §2, kept once: the generator, the tests and the
-- demo all create it from this file. Names are unqualified on purpose: the caller sets
-- search_path to DASHQUERY_SOURCE_SCHEMA first, so no schema name is hard-coded.
-- The application owns these tables; dbt only reads them and adds indexes.

create table organizations (
    id uuid primary key,
    name text not null,
    created_at timestamptz not null,
    updated_at timestamptz not null
);

create table customers (
    id uuid primary key,
    organization_id uuid not null references organizations (id),
    name text not null,
    status text not null check (status in ('active', 'inactive', 'prospect')),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    deleted_at timestamptz
);

create table products (
    id uuid primary key,
    organization_id uuid not null references organizations (id),
    name text not null,
    specifications jsonb not null,
    unit_price_cents bigint not null,
    created_at timestamptz not null
);

create table orders (
    id uuid primary key,
    organization_id uuid not null references organizations (id),
    customer_id uuid not null references customers (id),
    status text not null check (
        status in ('draft', 'confirmed', 'picking', 'picked', 'shipped', 'delivered', 'cancelled')
    ),
    total_cents bigint not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    deleted_at timestamptz
);

create table order_items (
    id uuid primary key,
    organization_id uuid not null references organizations (id),
    order_id uuid not null references orders (id),
    product_id uuid not null references products (id),
    quantity int not null,
    unit_price_cents bigint not null,
    line_total_cents bigint not null,
    created_at timestamptz not null
);

create table opportunities (
    id uuid primary key,
    organization_id uuid not null references organizations (id),
    customer_id uuid not null references customers (id),
    stage text not null check (
        stage in ('new', 'qualified', 'proposal', 'negotiation', 'won', 'lost')
    ),
    value_cents bigint not null,
    probability int not null check (probability between 0 and 100),
    expected_close_date date,
    closed_at timestamptz,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    deleted_at timestamptz
);

create table jobs (
    id uuid primary key,
    organization_id uuid not null references organizations (id),
    order_id uuid references orders (id),
    customer_id uuid not null references customers (id),
    status text not null check (status in ('scheduled', 'in_progress', 'completed', 'cancelled')),
    scheduled_at timestamptz not null,
    completed_at timestamptz,
    estimated_hours numeric(6, 2) not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    deleted_at timestamptz
);

create table job_time_entries (
    id uuid primary key,
    organization_id uuid not null references organizations (id),
    job_id uuid not null references jobs (id),
    hours numeric(6, 2) not null,
    worked_at timestamptz not null,
    created_at timestamptz not null
);

create table warranty_claims (
    id uuid primary key,
    organization_id uuid not null references organizations (id),
    customer_id uuid not null references customers (id),
    product_id uuid references products (id),
    status text not null check (status in ('pending', 'approved', 'rejected', 'resolved')),
    claim_type text not null check (claim_type in ('defect', 'damage', 'performance')),
    created_at timestamptz not null,
    resolved_at timestamptz,
    updated_at timestamptz not null,
    deleted_at timestamptz
);

create table activities (
    id uuid primary key,
    organization_id uuid not null references organizations (id),
    entity_type text not null,
    entity_id uuid not null,
    action text not null,
    description text not null,
    created_at timestamptz not null
);

create table targets (
    id uuid primary key,
    organization_id uuid not null references organizations (id),
    metric text not null,
    period_start date not null,
    period_end date not null,
    target_value numeric not null
);
