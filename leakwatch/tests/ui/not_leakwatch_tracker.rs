// A type that is spelled `Tracker<Self>` but is not leakwatch's.
mod mine {
    pub struct Tracker<T>(std::marker::PhantomData<T>);
}

#[leakwatch::tracked]
struct Watch {
    tracker: mine::Tracker<Self>,
}

fn main() {}
