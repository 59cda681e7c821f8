//! Values between PostgreSQL and the WIT types, mapped as Spin maps them
//! (`spin-factor-outbound-pg`): column types and values out, parameters in.

use bytes::BytesMut;
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use super::BoxError;
use crate::bindings::spin::postgres4_0_0::postgres as v4;

/// A parameter as tokio-postgres takes it.
pub(super) type Param = Box<dyn ToSql + Send + Sync>;

// --- values: PostgreSQL -> WIT ---

pub(super) fn data_type(t: &Type) -> v4::DbDataType {
    use v4::DbDataType as D;
    match *t {
        Type::BOOL => D::Boolean,
        Type::BYTEA => D::Binary,
        Type::FLOAT4 => D::Floating32,
        Type::FLOAT8 => D::Floating64,
        Type::INT2 => D::Int16,
        Type::INT4 => D::Int32,
        Type::INT8 => D::Int64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => D::Str,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => D::Datetime,
        Type::DATE => D::Date,
        Type::TIME => D::Time,
        Type::UUID => D::Uuid,
        Type::JSONB => D::Jsonb,
        Type::NUMERIC => D::Decimal,
        Type::INT4_RANGE => D::RangeInt32,
        Type::INT8_RANGE => D::RangeInt64,
        Type::NUM_RANGE => D::RangeDecimal,
        Type::INT4_ARRAY => D::ArrayInt32,
        Type::INT8_ARRAY => D::ArrayInt64,
        Type::NUMERIC_ARRAY => D::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => D::ArrayStr,
        Type::INTERVAL => D::Interval,
        _ => D::Other(t.name().to_string()),
    }
}

fn get<'a, T: FromSql<'a>, W>(
    row: &'a tokio_postgres::Row,
    i: usize,
    f: impl FnOnce(T) -> Result<W, BoxError>,
    wrap: impl FnOnce(W) -> v4::DbValue,
) -> Result<v4::DbValue, BoxError> {
    Ok(match row.try_get::<_, Option<T>>(i)? {
        Some(v) => wrap(f(v)?),
        None => v4::DbValue::DbNull,
    })
}

pub(super) fn db_value(row: &tokio_postgres::Row, i: usize) -> Result<v4::DbValue, BoxError> {
    use v4::DbValue as V;
    let t = row.columns()[i].type_().clone();
    match t {
        Type::BOOL => get(row, i, Ok, V::Boolean),
        Type::BYTEA => get(row, i, Ok, V::Binary),
        Type::FLOAT4 => get(row, i, Ok, V::Floating32),
        Type::FLOAT8 => get(row, i, Ok, V::Floating64),
        Type::INT2 => get(row, i, Ok, V::Int16),
        Type::INT4 => get(row, i, Ok, V::Int32),
        Type::INT8 => get(row, i, Ok, V::Int64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => get(row, i, Ok, V::Str),
        Type::TIMESTAMP => get(
            row,
            i,
            |v: NaiveDateTime| Ok(datetime_to_wit(v)),
            V::Datetime,
        ),
        Type::TIMESTAMPTZ => get(
            row,
            i,
            |v: chrono::DateTime<chrono::Utc>| Ok(datetime_to_wit(v.naive_utc())),
            V::Datetime,
        ),
        Type::DATE => get(
            row,
            i,
            |d: NaiveDate| Ok((d.year(), d.month() as u8, d.day() as u8)),
            V::Date,
        ),
        Type::TIME => get(
            row,
            i,
            |t: NaiveTime| {
                Ok((
                    t.hour() as u8,
                    t.minute() as u8,
                    t.second() as u8,
                    t.nanosecond(),
                ))
            },
            V::Time,
        ),
        Type::UUID => get(row, i, |u: uuid::Uuid| Ok(u.to_string()), V::Uuid),
        Type::JSONB => get(
            row,
            i,
            |j: serde_json::Value| Ok(serde_json::to_vec(&j)?),
            V::Jsonb,
        ),
        Type::NUMERIC => get(
            row,
            i,
            |d: rust_decimal::Decimal| Ok(d.to_string()),
            V::Decimal,
        ),
        Type::INT4_RANGE => get(row, i, |r: Range<i32>| Ok(r.to_wit(|v| v)), V::RangeInt32),
        Type::INT8_RANGE => get(row, i, |r: Range<i64>| Ok(r.to_wit(|v| v)), V::RangeInt64),
        Type::NUM_RANGE => get(
            row,
            i,
            |r: Range<rust_decimal::Decimal>| Ok(r.to_wit(|d| d.to_string())),
            V::RangeDecimal,
        ),
        Type::INT4_ARRAY => get(row, i, Ok, V::ArrayInt32),
        Type::INT8_ARRAY => get(row, i, Ok, V::ArrayInt64),
        Type::NUMERIC_ARRAY => get(
            row,
            i,
            |a: Vec<Option<rust_decimal::Decimal>>| {
                Ok(a.into_iter().map(|d| d.map(|d| d.to_string())).collect())
            },
            V::ArrayDecimal,
        ),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => get(row, i, Ok, V::ArrayStr),
        Type::INTERVAL => get(row, i, |v: Interval| Ok(v.0), V::Interval),
        _ => get(row, i, |r: Raw| Ok(r.0), V::Unsupported),
    }
}

fn datetime_to_wit(v: NaiveDateTime) -> (i32, u8, u8, u8, u8, u8, u32) {
    (
        v.year(),
        v.month() as u8,
        v.day() as u8,
        v.hour() as u8,
        v.minute() as u8,
        v.second() as u8,
        v.nanosecond(),
    )
}

/// Any column's raw binary value (`unsupported`).
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// `interval`: microseconds, days, months (PostgreSQL's binary layout).
#[derive(Debug)]
struct Interval(v4::Interval);

impl<'a> FromSql<'a> for Interval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if raw.len() != 16 {
            return Err("invalid interval length".into());
        }
        let micros = i64::from_be_bytes(raw[0..8].try_into()?);
        let days = i32::from_be_bytes(raw[8..12].try_into()?);
        let months = i32::from_be_bytes(raw[12..16].try_into()?);
        Ok(Interval(v4::Interval {
            micros,
            days,
            months,
        }))
    }
    fn accepts(t: &Type) -> bool {
        *t == Type::INTERVAL
    }
}

impl ToSql for Interval {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.extend_from_slice(&self.0.micros.to_be_bytes());
        out.extend_from_slice(&self.0.days.to_be_bytes());
        out.extend_from_slice(&self.0.months.to_be_bytes());
        Ok(IsNull::No)
    }
    fn accepts(t: &Type) -> bool {
        *t == Type::INTERVAL
    }
    to_sql_checked!();
}

/// A range value; `None` bounds are unbounded. An empty range has both bounds `None` and
/// `empty` set.
#[derive(Debug)]
struct Range<T> {
    lower: Option<(T, v4::RangeBoundKind)>,
    upper: Option<(T, v4::RangeBoundKind)>,
    empty: bool,
}

type WitRange<W> = (
    Option<(W, v4::RangeBoundKind)>,
    Option<(W, v4::RangeBoundKind)>,
);

impl<T> Range<T> {
    fn to_wit<W>(self, f: impl Fn(T) -> W) -> WitRange<W> {
        (
            self.lower.map(|(v, k)| (f(v), k)),
            self.upper.map(|(v, k)| (f(v), k)),
        )
    }

    fn from_wit<W>(
        r: &WitRange<W>,
        f: impl Fn(&W) -> Result<T, BoxError>,
    ) -> Result<Self, BoxError> {
        let conv = |b: &Option<(W, v4::RangeBoundKind)>| -> Result<_, BoxError> {
            b.as_ref().map(|(v, k)| Ok((f(v)?, *k))).transpose()
        };
        Ok(Range {
            lower: conv(&r.0)?,
            upper: conv(&r.1)?,
            empty: false,
        })
    }
}

fn range_element(t: &Type) -> Option<Type> {
    match *t {
        Type::INT4_RANGE => Some(Type::INT4),
        Type::INT8_RANGE => Some(Type::INT8),
        Type::NUM_RANGE => Some(Type::NUMERIC),
        _ => None,
    }
}

impl<'a, T: FromSql<'a>> FromSql<'a> for Range<T> {
    fn from_sql(t: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        use postgres_protocol::types::{Range as R, RangeBound as B, range_from_sql};
        let elem = range_element(t).ok_or("not a range type")?;
        let bound = |b: B<Option<&'a [u8]>>| -> Result<_, BoxError> {
            Ok(match b {
                B::Inclusive(Some(v)) => {
                    Some((T::from_sql(&elem, v)?, v4::RangeBoundKind::Inclusive))
                }
                B::Exclusive(Some(v)) => {
                    Some((T::from_sql(&elem, v)?, v4::RangeBoundKind::Exclusive))
                }
                _ => None,
            })
        };
        match range_from_sql(raw)? {
            R::Empty => Ok(Range {
                lower: None,
                upper: None,
                empty: true,
            }),
            R::Nonempty(lo, hi) => Ok(Range {
                lower: bound(lo)?,
                upper: bound(hi)?,
                empty: false,
            }),
        }
    }
    fn accepts(t: &Type) -> bool {
        range_element(t).is_some_and(|e| T::accepts(&e))
    }
}

impl<T: ToSql> ToSql for Range<T> {
    fn to_sql(&self, t: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        use postgres_protocol::types::{RangeBound as B, empty_range_to_sql, range_to_sql};
        if self.empty {
            empty_range_to_sql(out);
            return Ok(IsNull::No);
        }
        let elem = range_element(t).ok_or("not a range type")?;
        let write = |b: &Option<(T, v4::RangeBoundKind)>,
                     buf: &mut BytesMut|
         -> Result<B<postgres_protocol::IsNull>, BoxError> {
            let Some((v, kind)) = b else {
                return Ok(B::Unbounded);
            };
            let null = match v.to_sql(&elem, buf)? {
                IsNull::Yes => postgres_protocol::IsNull::Yes,
                IsNull::No => postgres_protocol::IsNull::No,
            };
            Ok(match kind {
                v4::RangeBoundKind::Inclusive => B::Inclusive(null),
                v4::RangeBoundKind::Exclusive => B::Exclusive(null),
            })
        };
        range_to_sql(
            |buf| write(&self.lower, buf),
            |buf| write(&self.upper, buf),
            out,
        )?;
        Ok(IsNull::No)
    }
    fn accepts(t: &Type) -> bool {
        range_element(t).is_some_and(|e| T::accepts(&e))
    }
    to_sql_checked!();
}

// --- values: WIT -> PostgreSQL ---

/// `db-null`: NULL of whatever type the statement expects.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(&self, _: &Type, _: &mut BytesMut) -> Result<IsNull, BoxError> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

pub(super) fn to_sql_params(params: &[v4::ParameterValue]) -> Result<Vec<Param>, v4::Error> {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            to_sql(p).map_err(|e| v4::Error::BadParameter(format!("parameter {}: {e}", i + 1)))
        })
        .collect()
}

fn decimal(s: &str) -> Result<rust_decimal::Decimal, BoxError> {
    s.parse::<rust_decimal::Decimal>()
        .or_else(|_| rust_decimal::Decimal::from_scientific(s))
        .map_err(|e| format!("invalid decimal {s:?}: {e}").into())
}

fn to_sql(p: &v4::ParameterValue) -> Result<Param, BoxError> {
    use v4::ParameterValue as P;
    Ok(match p {
        P::Boolean(v) => Box::new(*v),
        P::Int8(v) => Box::new(*v),
        P::Int16(v) => Box::new(*v),
        P::Int32(v) => Box::new(*v),
        P::Int64(v) => Box::new(*v),
        P::Floating32(v) => Box::new(*v),
        P::Floating64(v) => Box::new(*v),
        P::Str(v) => Box::new(v.clone()),
        P::Binary(v) => Box::new(v.clone()),
        P::Date((y, m, d)) => {
            Box::new(NaiveDate::from_ymd_opt(*y, (*m).into(), (*d).into()).ok_or("invalid date")?)
        }
        P::Time((h, m, s, ns)) => Box::new(
            NaiveTime::from_hms_nano_opt((*h).into(), (*m).into(), (*s).into(), *ns)
                .ok_or("invalid time")?,
        ),
        P::Datetime((y, mo, d, h, mi, s, ns)) => {
            let date =
                NaiveDate::from_ymd_opt(*y, (*mo).into(), (*d).into()).ok_or("invalid date")?;
            let time = NaiveTime::from_hms_nano_opt((*h).into(), (*mi).into(), (*s).into(), *ns)
                .ok_or("invalid time")?;
            Box::new(NaiveDateTime::new(date, time))
        }
        P::Timestamp(v) => Box::new(
            chrono::DateTime::<chrono::Utc>::from_timestamp(*v, 0)
                .ok_or("timestamp out of range")?,
        ),
        P::Uuid(v) => Box::new(uuid::Uuid::parse_str(v)?),
        P::Jsonb(v) => Box::new(serde_json::from_slice::<serde_json::Value>(v)?),
        P::Decimal(v) => Box::new(decimal(v)?),
        P::RangeInt32(r) => Box::new(Range::from_wit(r, |v| Ok(*v))?),
        P::RangeInt64(r) => Box::new(Range::from_wit(r, |v| Ok(*v))?),
        P::RangeDecimal(r) => Box::new(Range::from_wit(r, |v| decimal(v))?),
        P::ArrayInt32(v) => Box::new(v.clone()),
        P::ArrayInt64(v) => Box::new(v.clone()),
        P::ArrayDecimal(v) => Box::new(
            v.iter()
                .map(|d| d.as_deref().map(decimal).transpose())
                .collect::<Result<Vec<_>, _>>()?,
        ),
        P::ArrayStr(v) => Box::new(v.clone()),
        P::Interval(v) => Box::new(Interval(*v)),
        P::DbNull => Box::new(Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_convert_like_spin() {
        use v4::ParameterValue as P;
        let ok = [
            P::Int64(1),
            P::Str("x".into()),
            P::Date((2026, 2, 28)),
            P::Datetime((2026, 1, 20, 10, 0, 0, 0)),
            P::Timestamp(1_700_000_000),
            P::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
            P::Jsonb(br#"{"a":[1,2]}"#.to_vec()),
            P::Decimal("12.345".into()),
            P::RangeInt32((Some((1, v4::RangeBoundKind::Inclusive)), None)),
            P::ArrayStr(vec![Some("a".into()), None]),
            P::Interval(v4::Interval {
                micros: 1,
                days: 2,
                months: 3,
            }),
            P::DbNull,
        ];
        assert!(to_sql_params(&ok).is_ok());
        for bad in [
            P::Date((2026, 2, 30)),
            P::Uuid("nope".into()),
            P::Jsonb(b"{".to_vec()),
            P::Decimal("1.2.3".into()),
        ] {
            assert!(
                matches!(to_sql_params(&[bad.clone()]), Err(v4::Error::BadParameter(m)) if m.starts_with("parameter 1:")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn interval_and_ranges_round_trip() {
        let i = Interval(v4::Interval {
            micros: -5,
            days: 7,
            months: 13,
        });
        let mut buf = BytesMut::new();
        i.to_sql(&Type::INTERVAL, &mut buf).unwrap();
        let back = Interval::from_sql(&Type::INTERVAL, &buf).unwrap().0;
        assert_eq!((back.micros, back.days, back.months), (-5, 7, 13));

        let r: Range<i64> = Range::from_wit(
            &(
                Some((3, v4::RangeBoundKind::Inclusive)),
                Some((9, v4::RangeBoundKind::Exclusive)),
            ),
            |v| Ok(*v),
        )
        .unwrap();
        let mut buf = BytesMut::new();
        r.to_sql(&Type::INT8_RANGE, &mut buf).unwrap();
        let back = Range::<i64>::from_sql(&Type::INT8_RANGE, &buf).unwrap();
        assert!(matches!(
            back.to_wit(|v| v),
            (
                Some((3, v4::RangeBoundKind::Inclusive)),
                Some((9, v4::RangeBoundKind::Exclusive))
            )
        ));
    }
}
