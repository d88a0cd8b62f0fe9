//! Priority classes: every message carries one, and each has its own stats lane.

/// The five priority classes, most urgent first.
///
/// Each class is a stats lane (`LaneStats[5]`); the value travels with the
/// message and `recv_fast` returns it.
///
/// ```
/// use fusion_ring::PriorityClass;
/// assert_eq!(PriorityClass::ALL.len(), 5);
/// assert_eq!(PriorityClass::from_u8(0), Some(PriorityClass::RealTime));
/// assert_eq!(PriorityClass::from_u8(5), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum PriorityClass {
    /// Hard deadlines (control loops, audio callbacks).
    RealTime = 0,
    /// Urgent but not deadline-bound.
    High = 1,
    /// The default.
    #[default]
    Normal = 2,
    /// Can wait.
    Low = 3,
    /// Bulk traffic.
    Background = 4,
}

impl PriorityClass {
    /// Number of classes (and stats lanes).
    pub const COUNT: usize = 5;

    /// All classes, most urgent first; index = lane number.
    pub const ALL: [PriorityClass; 5] = [
        PriorityClass::RealTime,
        PriorityClass::High,
        PriorityClass::Normal,
        PriorityClass::Low,
        PriorityClass::Background,
    ];

    /// The class with wire value `v`, or `None` if `v` is not one.
    #[inline]
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::RealTime),
            1 => Some(Self::High),
            2 => Some(Self::Normal),
            3 => Some(Self::Low),
            4 => Some(Self::Background),
            _ => None,
        }
    }

    /// The stats lane of this class (0..5).
    #[inline]
    pub const fn lane(self) -> usize {
        self as usize
    }

    /// Lower-case name, as printed by the CLI.
    pub const fn name(self) -> &'static str {
        match self {
            Self::RealTime => "realtime",
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
            Self::Background => "background",
        }
    }
}
