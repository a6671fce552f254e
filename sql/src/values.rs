//! Bounds on the values a statement's functions build.
//!
//! DataFusion's memory pool counts what sorts, joins and aggregates hold,
//! not what a scalar function returns: `repeat('x', 600000000)` built a
//! 600 MB string under a 256 MiB statement limit. So the functions whose
//! output can outgrow their input by more than a constant (`repeat`, the
//! pads, `replace`, `concat`, `array_repeat`, `range` …) are wrapped: before
//! the inner function runs, the size of what it would build is computed
//! from its arguments, and a value larger than `max_value` bytes, or a batch
//! of values larger than the statement's memory, is refused with SQLSTATE
//! 54000. Every other way to grow a value (the `||` operator, `concat` of
//! bounded values) at most adds its inputs' sizes, and its result is checked
//! after it is built, so each step of a chain is bounded by the step before.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility, binary_expr,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;

use crate::error::SqlError;

/// How a wrapped function's output size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: |s| × n.
    Repeat,
    /// `lpad(s, n [, fill])`, `rpad`: n characters of up to 4 bytes.
    Pad,
    /// `replace(s, from, to)`: every `from` becomes `to`.
    Replace,
    /// `regexp_replace(s, pattern, replacement [, flags])`.
    RegexpReplace,
    /// `concat(…)`, `concat_ws(sep, …)`: the sum of the arguments.
    Sum,
    /// `array_repeat(v, n)`, `array_resize(a, n [, v])`: n elements.
    Elements,
    /// `range(…)`, `generate_series(…)`: (stop − start) / step elements.
    Series,
}

fn growth(name: &str) -> Option<Growth> {
    Some(match name {
        "repeat" => Growth::Repeat,
        "lpad" | "rpad" => Growth::Pad,
        "replace" => Growth::Replace,
        "regexp_replace" => Growth::RegexpReplace,
        "concat" | "concat_ws" | "array_concat" | "overlay" | "translate" => Growth::Sum,
        "array_repeat" | "array_resize" => Growth::Elements,
        "range" | "generate_series" => Growth::Series,
        _ => return None,
    })
}

/// Replaces the functions of `ctx` that can build large values with bounded
/// ones, and plans `||` through a check of its result.
pub fn bound_functions(ctx: &SessionContext, max_value: usize, max_batch: usize) -> Result<(), SqlError> {
    let state = ctx.state();
    let mut wrapped = Vec::new();
    for (name, udf) in state.scalar_functions() {
        if let Some(growth) = growth(name)
            && udf.name() == name
        {
            wrapped.push(ScalarUDF::new_from_impl(Bounded {
                inner: Arc::clone(udf),
                growth,
                limit: Limit { max_value, max_batch },
            }));
        }
    }
    for udf in wrapped {
        ctx.register_udf(udf);
    }
    let checked = Arc::new(ScalarUDF::new_from_impl(Checked {
        signature: Signature::any(1, Volatility::Immutable),
        limit: Limit { max_value, max_batch },
    }));
    ctx.state_ref()
        .write()
        .register_expr_planner(Arc::new(CheckedConcat { checked }))
        .map_err(SqlError::from)
}

/// The two bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Limit {
    max_value: usize,
    max_batch: usize,
}

impl Limit {
    fn refuse(&self, what: &str, bytes: u128, limit: usize, setting: &str) -> DataFusionError {
        DataFusionError::ResourcesExhausted(format!(
            "{what} would build {bytes} bytes; at most {limit} are allowed ({setting})"
        ))
    }

    /// Checks sizes computed before building: the largest value and the sum.
    fn before(&self, name: &str, largest: u128, total: u128) -> Result<()> {
        if largest > self.max_value as u128 {
            return Err(self.refuse(&format!("{name}()"), largest, self.max_value, "sql.max_value_mib"));
        }
        if total > self.max_batch as u128 {
            return Err(self.refuse(
                &format!("{name}() over these rows"),
                total,
                self.max_batch,
                "sql.memory_mib",
            ));
        }
        Ok(())
    }

    /// Checks a value after it was built.
    fn after(&self, name: &str, value: &ColumnarValue) -> Result<()> {
        let (largest, total) = match value {
            ColumnarValue::Scalar(s) => (s.size() as u128, s.size() as u128),
            ColumnarValue::Array(a) => {
                let largest = (0..a.len()).map(|row| byte_len_array(a, row)).max().unwrap_or(0);
                (largest as u128, a.get_array_memory_size() as u128)
            }
        };
        self.before(name, largest, total)
    }
}

/// Bytes of a string, binary or list value at `row` (0 when null).
fn byte_len_array(a: &ArrayRef, row: usize) -> usize {
    if a.is_null(row) {
        return 0;
    }
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(row).len(),
        DataType::LargeUtf8 => a.as_string::<i64>().value(row).len(),
        DataType::Utf8View => a.as_string_view().value(row).len(),
        DataType::Binary => a.as_binary::<i32>().value(row).len(),
        DataType::LargeBinary => a.as_binary::<i64>().value(row).len(),
        DataType::BinaryView => a.as_binary_view().value(row).len(),
        DataType::List(_) => a.as_list::<i32>().value(row).get_array_memory_size(),
        DataType::LargeList(_) => a.as_list::<i64>().value(row).get_array_memory_size(),
        _ => a.get_array_memory_size() / a.len().max(1),
    }
}

fn byte_len(arg: &ColumnarValue, row: usize) -> u128 {
    match arg {
        ColumnarValue::Scalar(s) => s.size() as u128,
        ColumnarValue::Array(a) => byte_len_array(a, row) as u128,
    }
}

/// Characters of a string argument at `row`.
fn string_at(arg: &ColumnarValue, row: usize) -> Option<String> {
    match arg {
        ColumnarValue::Scalar(s) => match s {
            ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => v.clone(),
            _ => None,
        },
        ColumnarValue::Array(a) => {
            let a = cast(a, &DataType::Utf8).ok()?;
            let a = a.as_string::<i32>();
            (!a.is_null(row)).then(|| a.value(row).to_string())
        }
    }
}

/// Integer arguments, one per row.
struct Ints(Option<ArrayRef>, Option<i64>);

impl Ints {
    fn of(arg: &ColumnarValue) -> Self {
        match arg {
            ColumnarValue::Scalar(s) => Self(
                None,
                s.cast_to(&DataType::Int64).ok().and_then(|v| match v {
                    ScalarValue::Int64(v) => v,
                    _ => None,
                }),
            ),
            ColumnarValue::Array(a) => Self(cast(a, &DataType::Int64).ok(), None),
        }
    }

    fn at(&self, row: usize) -> i64 {
        match &self.0 {
            Some(a) => {
                let a = a.as_primitive::<Int64Type>();
                if a.is_null(row) { 0 } else { a.value(row) }
            }
            None => self.1.unwrap_or(0),
        }
    }
}

/// What `growth` would build for row `row` of `args`, bytes.
fn estimate(growth: Growth, args: &[ColumnarValue], ints: &[Ints], row: usize) -> u128 {
    let len = |i: usize| args.get(i).map_or(0, |a| byte_len(a, row));
    let int = |i: usize| ints.get(i).map_or(0, |n| n.at(row)).max(0) as u128;
    match growth {
        Growth::Repeat => len(0) * int(1),
        Growth::Pad => int(1) * 4,
        Growth::Replace => match len(0).checked_div(len(1)) {
            Some(matches) => len(0) + matches * len(2),
            // An empty pattern matches between every two characters.
            None => len(0) * (len(2) + 1) + len(2),
        },
        Growth::RegexpReplace => {
            let replacement = args.get(2).and_then(|a| string_at(a, row)).unwrap_or_default();
            let per_match = if replacement.contains('\\') || replacement.contains('$') {
                // Each match may repeat groups of the input.
                len(2) * (len(0) + 1)
            } else {
                len(2)
            };
            len(0) + (len(0) + 1) * per_match
        }
        Growth::Sum => (0..args.len()).map(len).sum::<u128>() * 2,
        Growth::Elements => int(1) * 16 + len(0) * int(1) + len(2) * int(1),
        Growth::Series => {
            let (start, stop, step) = match args.len() {
                1 => (0, ints[0].at(row), 1),
                2 => (ints[0].at(row), ints[1].at(row), 1),
                _ => (ints[0].at(row), ints[1].at(row), ints[2].at(row)),
            };
            let step = step.unsigned_abs().max(1) as u128;
            ((stop as i128 - start as i128).unsigned_abs() / step + 1) * 8
        }
    }
}

/// A function that can build large values, with its output bounded.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
    limit: Limit,
}

impl Bounded {
    fn check_arguments(&self, args: &ScalarFunctionArgs) -> Result<()> {
        if args.args.is_empty() {
            return Ok(());
        }
        let ints: Vec<Ints> = match self.growth {
            Growth::Repeat | Growth::Pad | Growth::Elements => args.args.iter().map(Ints::of).collect(),
            Growth::Series => {
                // Dates and timestamps step by intervals: bounded by the
                // check after.
                if args.args.iter().any(|a| !a.data_type().is_integer()) {
                    return Ok(());
                }
                args.args.iter().map(Ints::of).collect()
            }
            _ => Vec::new(),
        };
        let rows = if args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
            1
        } else {
            args.number_rows
        };
        let (mut largest, mut total) = (0u128, 0u128);
        for row in 0..rows {
            let bytes = estimate(self.growth, &args.args, &ints, row);
            largest = largest.max(bytes);
            total += bytes;
        }
        self.limit.before(self.inner.name(), largest, total)
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<datafusion::arrow::datatypes::FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check_arguments(&args)?;
        let out = self.inner.invoke_with_args(args)?;
        self.limit.after(self.inner.name(), &out)?;
        Ok(out)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// `reelflow_checked(v)`: `v`, once it is known to be within the bounds.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    signature: Signature,
    limit: Limit,
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        "reelflow_checked"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    // The column is named after the expression checked, as if unwrapped.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(args[0].schema_name().to_string())
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let value = args.args.swap_remove(0);
        self.limit.after("the || operator", &value)?;
        Ok(value)
    }
}

/// Plans `a || b` of strings as `reelflow_checked(a || b)`.
#[derive(Debug)]
struct CheckedConcat {
    checked: Arc<ScalarUDF>,
}

impl ExprPlanner for CheckedConcat {
    fn plan_binary_op(&self, expr: RawBinaryExpr, _schema: &DFSchema) -> Result<PlannerResult<RawBinaryExpr>> {
        if expr.op != BinaryOperator::StringConcat {
            return Ok(PlannerResult::Original(expr));
        }
        let concat = binary_expr(expr.left, datafusion::logical_expr::Operator::StringConcat, expr.right);
        Ok(PlannerResult::Planned(self.checked.call(vec![concat])))
    }
}
