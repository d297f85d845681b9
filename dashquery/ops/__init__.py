"""Operations: health (status), warming, change notification and its refresh queue, the dbt
runner. Needs the ``ops`` extra only where it runs dbt or prints with rich."""
