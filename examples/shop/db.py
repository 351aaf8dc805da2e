"""The shop's database: async SQLAlchemy on SQLite (aiosqlite); the app turns SQLAlchemy's own
OpenTelemetry instrumentation on at startup, as such services ship it.

SHOP_DATABASE_URL overrides where it lives; by default a file in the temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DEFAULT = Path(tempfile.gettempdir()) / f"examples-shop-{os.getpid()}.sqlite3"
URL = os.environ.get("SHOP_DATABASE_URL", f"sqlite+aiosqlite:///{DEFAULT}")
engine = create_async_engine(URL)
Session = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Product(Base):
    __tablename__ = "products"
    sku: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class OrderLine(Base):
    __tablename__ = "order_lines"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[int]
    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"))


async def create(attempts: int = 5) -> None:
    """The tables and a few rows, once, whichever of several workers starting together (under
    gunicorn, on one database file) gets there first: the others find them made. (Checking
    then creating is not atomic: the second one's CREATE TABLE or INSERT fails, and a worker
    whose startup fails makes gunicorn stop the whole server.)"""
    for attempt in range(attempts):
        try:
            async with engine.begin() as connection:
                await connection.run_sync(Base.metadata.create_all)
            async with Session() as session:
                if (await session.execute(select(Product).limit(1))).first() is None:
                    session.add_all(
                        [Product(sku=f"sku-{n}", name=f"Product {n}") for n in range(1, 4)]
                        + [OrderLine(uid=1, sku=f"sku-{n}") for n in range(1, 4)]
                    )
                    await session.commit()
            return
        except (OperationalError, IntegrityError):
            # Another worker created a table or the rows between our check and our write.
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))


async def order_names(session: AsyncSession, uid: int) -> list[str]:
    """A user's products, the N+1 way: the lines, then each line's product."""
    lines = (await session.execute(select(OrderLine).where(OrderLine.uid == uid))).scalars()
    names = []
    for line in list(lines):
        product = (await session.execute(select(Product).where(Product.sku == line.sku))).scalar()
        names.append(product.name if product is not None else line.sku)
    return names
